// The run configuration: YAML file + `section.key=value` overrides, validated against one table
// of known keys (config_schema), which also generates --help. Nothing trains until every key is
// known, typed and in range.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bll {

struct DataConfig {
  std::string dataset;       // fashion-mnist | mnist | cifar10 | reversal (generated, no files) | folder
  std::string dir;           // folder holding the data set's files
  bool normalize = true;     // per-channel standardization with train-set statistics
  bool hflip = false;        // random horizontal flip (training only)
  int64_t crop_padding = 0;  // random crop after zero padding (training only); 0 = off
  int64_t train_limit = 0;   // use only the first N training samples; 0 = all
  int64_t test_limit = 0;    // use only the first N test samples; 0 = all
  std::string task;          // classify | autoencode (supplement §2.1: 56x28 image + uncertainty)
  // folder: the images' side, channels, decoding threads, and the random resized crop's range
  int64_t image_size = 224, channels = 3, workers = 2;
  double scale_min = 0.08, scale_max = 1.0, ratio_min = 0.75, ratio_max = 4.0 / 3.0;
  std::string on_bad_file = "error";  // folder: error (stop, naming the file) | skip (the next image instead)
  std::string normalization;          // folder, packed: a normalization.json to use; empty = fit to the images
};

struct ModelConfig {
  std::string type;              // a registered model (models/model.h: model_types())
  std::vector<int64_t> widths;   // cnn: channels per stage; mlp: hidden sizes
  int64_t width = 64;            // resnet: channels of the first stage (64 = the standard network);
                                 // transformer: model dimension
  std::string stem = "auto";     // resnet: small | imagenet | auto (imagenet from 128 pixels a side)
  int64_t layers = 0;            // transformer: layers, one attention head each; 0 = one per block
  int64_t convs_per_stage = 1;   // cnn: conv-bn-relu layers per stage (the last one downsamples)
  int64_t head_hidden = 0;       // hidden units of the classifier head; 0 = linear head
  int64_t blocks = 1;            // N: the network is split into N blocks
  std::vector<int64_t> split;    // optional: units per block (must sum to the unit count)
};

struct LossConfig {
  std::string family;         // message family: gaussian | bernoulli | poisson (losses/family.h)
  double kl_weight = 1.0;     // weight of D_KL(rho_k || alpha_k)
  double pred_weight = 1.0;   // weight of the local predictive (readout) cross-entropy
  double sigma = 1.0;         // standard deviation of the Gaussian messages
  std::string mixing;         // schedule: m = 1/(1 + tau*epoch) | constant: m = mixing_m
  double tau = 0.5;
  double mixing_m = 0.5;
  int64_t readout_pool = 2;   // readout classifier sees alpha average-pooled to pool x pool
  std::string feedback;       // closed_form: g_k solved on each batch | gradient: trained by the optimizer
  double feedback_momentum = 0.0;  // closed_form: weight of the previous solution (0 = this batch only)
  bool forward_posterior = false;  // training passes the posterior rho_k on instead of alpha_k
  int64_t span = 1;                // BLL(x): gradients flow across this many consecutive blocks
};

struct OptimConfig {
  std::string name;            // sgd | adam
  double lr = 1e-3;
  double momentum = 0.9;       // sgd only
  double weight_decay = 0.0;
  std::string schedule;        // constant | cosine
  int64_t t_max = 0;           // cosine period in epochs; 0 = train.epochs
  double lr_min = 0.0;
};

struct TrainConfig {
  int64_t epochs = 1;
  int64_t batch_size = 128;
  int64_t seed = 0;
  int64_t in_flight = 2;       // batches a rank may run ahead of the next one
  std::string method;          // bll | bp | fa (end to end across the ranks) | greedy | predsim (local)
  std::string schedule;        // auto | stream (local methods) | gpipe | 1f1b (end-to-end methods)
  int64_t micro_batches = 1;   // bp, fa: micro-batches per mini-batch (gradients accumulate)
  double sim_weight = 0.99;    // predsim: weight of the similarity-matching loss (beta)

  // bp and fa send gradients back rank to rank; the other methods learn block by block.
  bool end_to_end() const { return method == "bp" || method == "fa"; }
};

struct RuntimeConfig {
  std::string run_dir;         // where config, metrics and parameters go ("": a new runs/<config>/<time>)
  bool overwrite = false;      // an explicit run_dir that holds a run may be replaced
  int64_t threads = 0;         // intra-op threads per rank; 0 = cores of the node / ranks on it
  int64_t blas_threads = 1;    // OpenBLAS's own thread pool; 0 = leave it as the library set it
  std::string progress;        // auto | on | off (progress bar on rank 0)
  int64_t log_every = 50;      // steps between reads of the statistics (and progress refreshes)
  bool save_params = true;     // write each block's parameters at the end
  std::string wait;            // sleep: back off while waiting for a message | spin: busy-poll
  double timeout_s = 600;      // a wait for a message longer than this ends the job
  bool keep_freed_memory = true;  // keep freed heap memory instead of returning it to the kernel
  std::vector<int64_t> blocks_per_rank;  // placement: blocks of each rank, in order; empty = even
  bool auto_placement = false;           // blocks_per_rank: auto (balanced by measured cost)
  std::string device;          // cpu | cuda
  int64_t ranks_per_gpu = 1;   // cuda: node-local ranks sharing one GPU
  std::string transport;       // mpi | nccl
  std::string mpi_staging;     // sync | async: a GPU message's copy to host memory for MPI
  std::string precision;       // fp32 | bf16 (autocast of forward and local loss)
  std::string memory_format;   // auto | channels_last | contiguous (4-D activations and weights)
  std::string message_precision;  // fp32 | bf16 (alpha between spans)
  bool deterministic = false;  // cuda: deterministic kernels only
  bool trace = false;          // write trace.json: per-rank timelines
  int64_t replicas = 1;        // data parallelism: the ranks form stages x replicas
  std::string sync;            // grads: average gradients every step | params: average parameters
  int64_t sync_every = 1;      // sync params: steps between averages
};

struct CheckpointConfig {
  int64_t every_steps = 0;     // save every N optimizer steps (batches); 0 = only at the end
  int64_t keep = 2;            // complete checkpoints kept (older ones are removed)
  std::string resume;          // never | auto (the newest complete checkpoint, else from scratch) | PATH
};

struct Config {
  DataConfig data;
  ModelConfig model;
  LossConfig loss;
  OptimConfig optim;
  TrainConfig train;
  RuntimeConfig runtime;
  CheckpointConfig checkpoint;
  std::string source;          // the file it came from, for messages
};

enum class KeyType { Int, Float, Bool, String, IntList };

// A typed configuration value; only the member matching the key's type is meaningful.
struct Value {
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<int64_t> list;
};

// One known key. The table of these validates files and overrides, and generates --help.
struct KeySpec {
  std::string name;                    // "section.key"
  KeyType type;
  std::string default_yaml;            // default as YAML text; unused when required
  bool required = false;
  double min = -1e300, max = 1e300;    // inclusive range of numbers (of each list element)
  std::vector<std::string> choices;    // allowed strings; empty = any
  std::string help;
  // A resume may change this key: it changes only speed, placement, output or the last bits of
  // sums (threads, ranks, device, transport, ...). Every other key must equal the checkpoint's.
  bool free_on_resume = false;
  std::function<void(Config&, const Value&)> assign;
  std::function<Value(const Config&)> read;
};

const std::vector<KeySpec>& config_schema();

// Reads `path`, applies `overrides` ("section.key=value"), validates, and returns the typed
// configuration. Throws ConfigError with one line that names the file (or "command line"), the
// key and what was expected.
Config load_config(const std::string& path, const std::vector<std::string>& overrides);

// Same, from YAML text (tests; `source` names it in messages).
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides);

// The resolved configuration as YAML: every key, defaults included.
std::string config_to_yaml(const Config& config);

// The first key that decides what is trained (every key not free on resume) on which `a` and `b`
// differ, as "key 'optim.lr': 0.1 vs 0.05"; empty when they agree.
std::string training_difference(const Config& a, const Config& b);

// The --help text for keys, generated from config_schema().
std::string config_help();

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace bll
