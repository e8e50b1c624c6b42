// The table of configuration keys: each key's type, default, range or choices and help text.
// The parser (config.cpp) reads every key through this table, and --help is generated from it,
// so a new key is one row here and one field in config.h.
#include "bll/config.h"

#include <algorithm>
#include <stdexcept>

#include "bll/losses/family.h"
#include "bll/models/model.h"

namespace bll {
namespace {

// ---- the table --------------------------------------------------------------------------------

template <class T> struct TypeOf;
template <> struct TypeOf<int64_t> { static constexpr KeyType v = KeyType::Int; };
template <> struct TypeOf<double> { static constexpr KeyType v = KeyType::Float; };
template <> struct TypeOf<bool> { static constexpr KeyType v = KeyType::Bool; };
template <> struct TypeOf<std::string> { static constexpr KeyType v = KeyType::String; };
template <> struct TypeOf<std::vector<int64_t>> { static constexpr KeyType v = KeyType::IntList; };

void store(int64_t& out, const Value& v) { out = v.i; }
void store(double& out, const Value& v) { out = v.f; }
void store(bool& out, const Value& v) { out = v.b; }
void store(std::string& out, const Value& v) { out = v.s; }
void store(std::vector<int64_t>& out, const Value& v) { out = v.list; }
Value load(int64_t x) { Value v; v.i = x; return v; }
Value load(double x) { Value v; v.f = x; return v; }
Value load(bool x) { Value v; v.b = x; return v; }
Value load(const std::string& x) { Value v; v.s = x; return v; }
Value load(const std::vector<int64_t>& x) { Value v; v.list = x; return v; }

struct Opt {  // optional parts of a row
  double min = -1e300, max = 1e300;
  std::vector<std::string> choices;
  bool required = false;
};

template <class S, class T>
KeySpec row(const char* name, S Config::*section, T S::*field, const char* default_yaml,
            const char* help, Opt opt = {}) {
  KeySpec k;
  k.name = name;
  k.type = TypeOf<T>::v;
  k.default_yaml = default_yaml;
  k.required = opt.required;
  k.min = opt.min;
  k.max = opt.max;
  k.choices = opt.choices;
  k.help = help;
  k.assign = [section, field](Config& c, const Value& v) { store(c.*section.*field, v); };
  k.read = [section, field](const Config& c) { return load(c.*section.*field); };
  return k;
}

Opt range(double lo, double hi) { Opt o; o.min = lo; o.max = hi; return o; }
Opt one_of(std::vector<std::string> c) { Opt o; o.choices = std::move(c); return o; }
Opt required_one_of(std::vector<std::string> c) { Opt o = one_of(std::move(c)); o.required = true; return o; }
Opt required_range(double lo, double hi) { Opt o = range(lo, hi); o.required = true; return o; }
// runtime.blocks_per_rank: a list, or the word auto.
KeySpec blocks_per_rank_row() {
  KeySpec k = row("runtime.blocks_per_rank", &Config::runtime, &RuntimeConfig::blocks_per_rank, "[]",
                  "blocks owned by each rank, in order, e.g. [1,3]; [] = as even as possible (earlier ranks take "
                  "extras); auto = balanced by each block's cost, timed on the first batch",
                  range(1, 1024));
  k.choices = {"auto"};
  k.assign = [](Config& c, const Value& v) {
    c.runtime.blocks_per_rank = v.list;
    c.runtime.auto_placement = v.s == "auto";
  };
  k.read = [](const Config& c) {
    Value v;
    v.list = c.runtime.blocks_per_rank;
    if (c.runtime.auto_placement) v.s = "auto";
    return v;
  };
  return k;
}

constexpr double kBig = 9.0e15;  // integers beyond this are not meaningful here

std::vector<KeySpec> make_schema() {
  using C = Config;
  return {
    row("data.dataset", &C::data, &DataConfig::dataset, "",
        "data set: fashion-mnist, mnist, cifar10, reversal (the sequence task, generated from train.seed), or "
        "folder (your images: data.dir/train/<class>/* and data.dir/val/<class>/*, JPEG or PNG), or packed "
        "(an image folder packed into shards by bll-pack: crops without decoding)",
        required_one_of({"fashion-mnist", "mnist", "cifar10", "reversal", "folder", "packed"})),
    row("data.dir", &C::data, &DataConfig::dir, "",
        "folder with the data set's files, relative to the working directory (scripts/get_data.sh fills data/); required but for reversal"),
    row("data.normalize", &C::data, &DataConfig::normalize, "true", "standardize each channel with train-set mean and std"),
    row("data.hflip", &C::data, &DataConfig::hflip, "false", "random horizontal flip of training images"),
    row("data.task", &C::data, &DataConfig::task, "classify",
        "classify (labels) or autoencode: reconstruct the image stacked on a 0.2 uncertainty patch (56x28), supplement §2.1",
        one_of({"classify", "autoencode"})),
    row("data.crop_padding", &C::data, &DataConfig::crop_padding, "0", "random crop after zero padding by this many pixels (0 = off)", range(0, 16)),
    row("data.image_size", &C::data, &DataConfig::image_size, "224",
        "folder, packed: side of the square images the network sees (training: a random resized crop; evaluation: the centre "
        "crop of the image resized to image_size / 0.875)", range(8, 4096)),
    row("data.channels", &C::data, &DataConfig::channels, "3",
        "folder, packed: 3 (RGB; grey and CMYK files are converted) or 1 (grey)", range(1, 3)),
    row("data.workers", &C::data, &DataConfig::workers, "2",
        "folder, packed: threads that decode (folder) and crop the next batch while the pipeline trains", range(1, 256)),
    row("data.on_bad_file", &C::data, &DataConfig::on_bad_file, "error",
        "folder: a file that cannot be decoded stops the run naming it (error), or is replaced by the next readable "
        "image in the epoch's order, named once and counted in metrics.jsonl's replaced_files (skip)",
        one_of({"error", "skip"})),
    row("data.normalization", &C::data, &DataConfig::normalization, "",
        "folder, packed: with data.normalize, a file of per-channel statistics to use ({\"mean\": [...], \"std\": [...]}, "
        "as a run saves them in normalization.json; configs/imagenet_normalization.json has ImageNet's); empty = fit "
        "them to 512 training images"),
    row("data.scale_min", &C::data, &DataConfig::scale_min, "0.08", "folder, packed: smallest area fraction of a random resized crop", range(1e-6, 1)),
    row("data.scale_max", &C::data, &DataConfig::scale_max, "1.0", "folder, packed: largest area fraction of a random resized crop", range(1e-6, 1)),
    row("data.ratio_min", &C::data, &DataConfig::ratio_min, "0.75", "folder, packed: smallest aspect ratio (width / height) of a random resized crop", range(1e-3, 1e3)),
    row("data.ratio_max", &C::data, &DataConfig::ratio_max, "1.3333333333333333", "folder, packed: largest aspect ratio of a random resized crop", range(1e-3, 1e3)),
    row("data.train_limit", &C::data, &DataConfig::train_limit, "0", "use only the first N training samples (0 = all; reversal: sequences per epoch, 0 = 50000)", range(0, kBig)),
    row("data.test_limit", &C::data, &DataConfig::test_limit, "0", "use only the first N test samples (0 = all; reversal: held-out sequences, 0 = 10000)", range(0, kBig)),

    row("model.type", &C::model, &ModelConfig::type, "", "network, one file each in src/models/",
        required_one_of(model_types())),
    row("model.widths", &C::model, &ModelConfig::widths, "[]", "cnn: channels of each stage; mlp: size of each hidden layer",
        range(1, 1 << 16)),
    row("model.width", &C::model, &ModelConfig::width, "64", "resnet: channels of the first stage (64 is the standard network); transformer: model dimension",
        range(1, 1 << 12)),
    row("model.stem", &C::model, &ModelConfig::stem, "auto",
        "resnet: small (a 3x3 convolution at full resolution, for 28-64 pixel images), imagenet (a 7x7 stride-2 "
        "convolution and 3x3 stride-2 max pooling, as for 224-pixel ImageNet), or auto (imagenet from 128 pixels a side)",
        one_of({"auto", "small", "imagenet"})),
    row("model.layers", &C::model, &ModelConfig::layers, "0",
        "transformer: number of layers, one attention head each (0 = model.blocks: one layer per block)", range(0, 1024)),
    row("model.convs_per_stage", &C::model, &ModelConfig::convs_per_stage, "1", "cnn: conv-bn-relu layers per stage", range(1, 16)),
    row("model.head_hidden", &C::model, &ModelConfig::head_hidden, "0", "hidden units of the classifier head (0 = linear head)", range(0, 1 << 16)),
    row("model.blocks", &C::model, &ModelConfig::blocks, "", "N: number of blocks the network is split into", required_range(1, 1024)),
    row("model.split", &C::model, &ModelConfig::split, "[]",
        "units per block, e.g. [1,1,2]; empty = cut at units so that blocks hold equal shares of the layers", range(1, 1024)),

    row("loss.family", &C::loss, &LossConfig::family, "gaussian",
        "exponential family of the messages alpha_k, beta_k, one file each in src/losses/",
        one_of(family_names())),
    row("loss.kl_weight", &C::loss, &LossConfig::kl_weight, "1.0", "weight of the variational term D_KL(rho_k || alpha_k)", range(0, 1e6)),
    row("loss.pred_weight", &C::loss, &LossConfig::pred_weight, "1.0", "weight of the local predictive cross-entropy", range(0, 1e6)),
    row("loss.sigma", &C::loss, &LossConfig::sigma, "1.0", "gaussian: standard deviation of the messages", range(1e-6, 1e6)),
    row("loss.mixing", &C::loss, &LossConfig::mixing, "schedule",
        "posterior rho ~ alpha * beta^m: schedule (m = 1/(1+tau*epoch)) or constant (m = loss.mixing_m)",
        one_of({"schedule", "constant"})),
    row("loss.tau", &C::loss, &LossConfig::tau, "0.5", "annealing rate of the mixing schedule", range(0, 1e6)),
    row("loss.mixing_m", &C::loss, &LossConfig::mixing_m, "0.5", "m when loss.mixing is constant (1 = the full product alpha*beta)",
        range(0, 1)),
    row("loss.feedback", &C::loss, &LossConfig::feedback, "closed_form",
        "feedback g_k: closed_form (least squares on each batch), gradient (trained by the optimizer) or twin (the backward twin network, trained)",
        one_of({"closed_form", "gradient", "twin"})),
    row("loss.feedback_momentum", &C::loss, &LossConfig::feedback_momentum, "0.0",
        "closed_form: weight of the previous solution, per class (0 = this batch only)", range(0, 0.9999)),
    row("loss.forward_posterior", &C::loss, &LossConfig::forward_posterior, "false",
        "training passes the posterior rho_k to the next block instead of alpha_k (evaluation always passes alpha_k)"),
    row("loss.span", &C::loss, &LossConfig::span, "1",
        "BLL(x): gradients flow across x consecutive blocks before they stop (1 = plain BLL); a span stays on one rank",
        range(1, 1024)),
    row("loss.readout_pool", &C::loss, &LossConfig::readout_pool, "2", "local readout sees alpha average-pooled to PxP", range(1, 64)),

    row("optim.name", &C::optim, &OptimConfig::name, "adam", "optimizer of every block: sgd (with momentum) or adam", one_of({"sgd", "adam"})),
    row("optim.lr", &C::optim, &OptimConfig::lr, "0.001", "learning rate", range(1e-12, 100)),
    row("optim.momentum", &C::optim, &OptimConfig::momentum, "0.9", "sgd momentum", range(0, 1)),
    row("optim.weight_decay", &C::optim, &OptimConfig::weight_decay, "0.0", "L2 weight decay", range(0, 1)),
    row("optim.schedule", &C::optim, &OptimConfig::schedule, "constant", "learning-rate schedule: constant or cosine (annealing per epoch)",
        one_of({"constant", "cosine"})),
    row("optim.t_max", &C::optim, &OptimConfig::t_max, "0", "cosine period in epochs (0 = train.epochs)", range(0, 1e6)),
    row("optim.lr_min", &C::optim, &OptimConfig::lr_min, "0.0", "cosine floor of the learning rate", range(0, 100)),

    row("train.epochs", &C::train, &TrainConfig::epochs, "", "training epochs", required_range(1, 1e6)),
    row("train.batch_size", &C::train, &TrainConfig::batch_size, "128", "samples per batch", range(1, 1 << 20)),
    row("train.seed", &C::train, &TrainConfig::seed, "0", "seed of initialization, shuffling and augmentation", range(0, kBig)),
    row("train.in_flight", &C::train, &TrainConfig::in_flight, "2", "batches a rank may run ahead of the next rank", range(1, 1024)),
    row("train.method", &C::train, &TrainConfig::method, "bll",
        "bll: block-local learning; bp: end-to-end back-propagation, gradients sent back rank to rank; fa: bp "
        "with fixed random feedback weights in each layer's backward (feedback alignment); greedy: each block "
        "learns from its readout alone; predsim: readout + similarity matching per block (Noekland and Eidnes, 2019)",
        one_of({"bll", "bp", "fa", "greedy", "predsim"})),
    row("train.schedule", &C::train, &TrainConfig::schedule, "auto",
        "when things happen: stream (the free-running pipeline of bll, greedy, predsim), gpipe or 1f1b (bp, fa); "
        "auto = stream or gpipe",
        one_of({"auto", "stream", "gpipe", "1f1b"})),
    row("train.micro_batches", &C::train, &TrainConfig::micro_batches, "1",
        "bp, fa: micro-batches each mini-batch is split into; their gradients add up before the update", range(1, 4096)),
    row("train.sim_weight", &C::train, &TrainConfig::sim_weight, "0.99",
        "predsim: beta in (1 - beta) * readout cross-entropy + beta * similarity-matching loss", range(0, 1)),

    row("runtime.run_dir", &C::runtime, &RuntimeConfig::run_dir, "",
        "run directory, relative to the working directory (default: a new runs/<config file name>/<date-time>, "
        "with a link 'latest' beside it)"),
    row("runtime.overwrite", &C::runtime, &RuntimeConfig::overwrite, "false",
        "let a run replace the one in an explicit runtime.run_dir (otherwise refused)"),
    row("runtime.threads", &C::runtime, &RuntimeConfig::threads, "0", "intra-op threads per rank (0 = node cores / ranks on the node)", range(0, 4096)),
    row("runtime.blas_threads", &C::runtime, &RuntimeConfig::blas_threads, "1",
        "threads of OpenBLAS's own pool (0 = the library's default; its pool competes with the intra-op threads)",
        range(0, 4096)),
    row("runtime.progress", &C::runtime, &RuntimeConfig::progress, "auto", "progress bar on rank 0: auto (when stdout is a terminal), on, off",
        one_of({"auto", "on", "off"})),
    row("runtime.log_every", &C::runtime, &RuntimeConfig::log_every, "50",
        "steps between reads of the training statistics from the device and refreshes of the progress bar "
        "(the steps themselves never wait for the device)", range(1, 1e9)),
    row("runtime.wait", &C::runtime, &RuntimeConfig::wait, "sleep",
        "waiting for a message: sleep (back off; right when ranks share cores) or spin (busy-poll)",
        one_of({"sleep", "spin"})),
    row("runtime.timeout_s", &C::runtime, &RuntimeConfig::timeout_s, "600",
        "a wait for a message longer than this stops the job with an error", range(0.1, 1e7)),
    row("runtime.keep_freed_memory", &C::runtime, &RuntimeConfig::keep_freed_memory, "true",
        "keep freed heap memory for reuse instead of returning it to the kernel (glibc malloc)"),
    blocks_per_rank_row(),
    row("runtime.save_params", &C::runtime, &RuntimeConfig::save_params, "true", "save each block's parameters in the run directory at the end"),
    row("runtime.device", &C::runtime, &RuntimeConfig::device, "cpu",
        "where each rank computes: cpu, or cuda (the GPU of its node-local rank, see runtime.ranks_per_gpu)",
        one_of({"cpu", "cuda"})),
    row("runtime.ranks_per_gpu", &C::runtime, &RuntimeConfig::ranks_per_gpu, "1",
        "cuda: ranks of a node that share one GPU (node-local rank r uses GPU r / ranks_per_gpu)", range(1, 1024)),
    row("runtime.transport", &C::runtime, &RuntimeConfig::transport, "mpi",
        "how tensors move between ranks: mpi (GPU tensors staged through pinned host memory) or nccl (GPU to GPU)",
        one_of({"mpi", "nccl"})),
    row("runtime.mpi_staging", &C::runtime, &RuntimeConfig::mpi_staging, "sync",
        "cuda with transport mpi: how a GPU message reaches host memory for MPI: sync (the host waits for the "
        "copy) or async (the copy runs on a stream of its own and the send is posted once it is complete; "
        "not yet measured on a GPU, so not the default)",
        one_of({"sync", "async"})),
    row("runtime.precision", &C::runtime, &RuntimeConfig::precision, "fp32",
        "arithmetic of the forward and local-loss computation: fp32, or bf16 (autocast; fp32 weights and optimizer state)",
        one_of({"fp32", "bf16"})),
    row("runtime.memory_format", &C::runtime, &RuntimeConfig::memory_format, "auto",
        "layout of image tensors: channels_last (NHWC), contiguous (NCHW), or auto (channels_last on the CPU, "
        "contiguous on a GPU)",
        one_of({"auto", "channels_last", "contiguous"})),
    row("runtime.message_precision", &C::runtime, &RuntimeConfig::message_precision, "fp32",
        "alpha messages between blocks: fp32, or bf16 (half the bytes; rounded at every span boundary)",
        one_of({"fp32", "bf16"})),
    row("runtime.trace", &C::runtime, &RuntimeConfig::trace, "false",
        "record what every rank does when and write trace.json (Chrome trace events) in the run directory"),
    row("runtime.deterministic", &C::runtime, &RuntimeConfig::deterministic, "false",
        "cuda: deterministic kernels only (cuDNN, scatter-adds), so that reruns give equal parameters; slower"),
    row("runtime.replicas", &C::runtime, &RuntimeConfig::replicas, "1",
        "data x pipeline parallelism: the K ranks form K/replicas pipeline stages x replicas; each replica "
        "trains on its share (train.batch_size / replicas) of every batch", range(1, 1 << 20)),
    row("runtime.sync", &C::runtime, &RuntimeConfig::sync, "grads",
        "how the replicas of a stage agree: grads (average gradients every step) or params (average "
        "parameters every runtime.sync_every steps and at the end of each epoch)", one_of({"grads", "params"})),
    row("runtime.sync_every", &C::runtime, &RuntimeConfig::sync_every, "1",
        "runtime.sync params: optimizer steps between parameter averages", range(1, 1 << 30)),

    row("checkpoint.every_steps", &C::checkpoint, &CheckpointConfig::every_steps, "0",
        "save a checkpoint every N batches (optimizer steps) into <run dir>/checkpoints; 0 = only at the end",
        range(0, 1e15)),
    row("checkpoint.keep", &C::checkpoint, &CheckpointConfig::keep, "2",
        "complete checkpoints to keep; older ones are removed once a newer one is complete", range(1, 1e6)),
    row("checkpoint.resume", &C::checkpoint, &CheckpointConfig::resume, "never",
        "never; auto: go on from the newest complete checkpoint of this config's runs (runtime.run_dir if "
        "given), else start from scratch; or the path of a checkpoint or of a run directory"),
  };
}

// The keys a resume may change: they decide how fast and where the run computes, what it writes,
// or the last bits of sums, never what it trains; and data.on_bad_file, so that a run stopped by
// an unreadable file can go on with skip. A key missing here must match the checkpoint's (a new
// key is safe by default). runtime.replicas changes the batch each batch-norm sees: the
// trainer warns that such a resume will not match bit for bit.
const char* const kFreeOnResume[] = {
    "data.workers",
    "data.on_bad_file",
    "runtime.run_dir",       "runtime.overwrite", "runtime.threads",         "runtime.blas_threads",
    "runtime.progress",      "runtime.log_every", "runtime.wait",            "runtime.timeout_s",
    "runtime.keep_freed_memory", "runtime.blocks_per_rank", "runtime.save_params", "runtime.device",
    "runtime.ranks_per_gpu", "runtime.transport", "runtime.mpi_staging", "runtime.memory_format",   "runtime.trace",
    "runtime.replicas",      "checkpoint.every_steps", "checkpoint.keep",    "checkpoint.resume",
};

std::vector<KeySpec> marked_schema() {
  std::vector<KeySpec> schema = make_schema();
  for (const char* name : kFreeOnResume) {
    auto k = std::find_if(schema.begin(), schema.end(), [&](const KeySpec& s) { return s.name == name; });
    if (k == schema.end()) throw std::logic_error(std::string("kFreeOnResume names no key: ") + name);
    k->free_on_resume = true;
  }
  return schema;
}

}  // namespace

const std::vector<KeySpec>& config_schema() {
  static const std::vector<KeySpec> schema = marked_schema();
  return schema;
}

}  // namespace bll
