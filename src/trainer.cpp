#include "bll/trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>


#include "bll/auto_placement.h"
#include "bll/data/dataset.h"
#include "bll/data/loader.h"
#include "bll/device.h"
#include "bll/error.h"
#include "bll/learner.h"
#include "bll/schedules/schedule.h"
#include "bll/placement.h"
#include "bll/run_dir.h"
#include "epoch_record.h"
#include "bll/models/model.h"
#include "bll/models/twin.h"

namespace bll {
namespace fs = std::filesystem;
namespace {

// What every rank must know about the data; only rank 0 holds the data itself.
struct DataInfo {
  int64_t n_train = 0, n_test = 0, num_classes = 0;
  Shape sample_shape;  // {C, H, W}, or {T} for token sequences
  Shape label_shape;   // {} for a class per sample, {T} for a class per token, the image to reconstruct
  int64_t float_labels = 0;  // 1: targets are images (data.task autoencode), else class indices
};

// DataInfo as a fixed-size tensor for one broadcast: sizes, then each shape as rank + dims.
constexpr int64_t kMaxRank = 4, kInfoSize = 4 + 2 * (1 + kMaxRank);

torch::Tensor pack(const DataInfo& info) {
  auto v = torch::zeros({kInfoSize}, torch::kInt64);
  auto a = v.accessor<int64_t, 1>();
  a[0] = info.n_train, a[1] = info.n_test, a[2] = info.num_classes, a[3] = info.float_labels;
  int64_t at = 4;
  for (const Shape* s : {&info.sample_shape, &info.label_shape}) {
    if (int64_t(s->size()) > kMaxRank) throw RuntimeError("data description: a sample or label shape of rank > 4");
    a[at] = int64_t(s->size());
    for (size_t i = 0; i < s->size(); ++i) a[at + 1 + int64_t(i)] = (*s)[i];
    at += 1 + kMaxRank;
  }
  return v;
}

DataInfo unpack(const torch::Tensor& v) {
  auto a = v.accessor<int64_t, 1>();
  DataInfo info{a[0], a[1], a[2], {}, {}, a[3]};
  int64_t at = 4;
  for (Shape* s : {&info.sample_shape, &info.label_shape}) {
    for (int64_t i = 0; i < a[at]; ++i) s->push_back(a[at + 1 + i]);
    at += 1 + kMaxRank;
  }
  return info;
}

struct RankData {  // rank 0 only
  std::optional<BatchSource> train, test;
};

// Rank 0 claims the run directory and loads the data; every rank learns the outcome and the
// directory. A failure there ends every rank with the same exit code before any training,
// reported once by rank 0.
DataInfo start_up(const Config& config, std::string& run_dir, Transport& t, RankData& data) {
  DataInfo info;
  std::string status = "ok";
  if (t.rank() == 0) {
    try {
      run_dir = claim_run_dir(config);
      std::ofstream(fs::path(run_dir) / "config.yaml") << config_to_yaml(config);
      DataSplit split = load_dataset(config.data, uint64_t(config.train.seed));
      info.n_train = split.train.size();
      info.n_test = split.test.size();
      info.num_classes = split.num_classes;
      const auto s = split.train.images.sizes();
      info.sample_shape = Shape(s.begin() + 1, s.end());
      info.label_shape = Shape(split.train.labels.sizes().begin() + 1, split.train.labels.sizes().end());
      if (split.train.reconstruct) {  // the target is the input; its size takes the place of the classes
        info.label_shape = info.sample_shape;
        info.num_classes = split.train.images[0].numel();
        info.float_labels = 1;
      }
      const bool images = !split.train.sequences() && !split.train.reconstruct;
      const Normalizer norm = images && config.data.normalize ? Normalizer::fit(split.train.images)
                                                              : Normalizer::identity(images ? s[1] : 1);
      const uint64_t seed = uint64_t(config.train.seed);
      data.train.emplace(split.train, norm, config.train.batch_size, true,
                         Augment{config.data.hflip, config.data.crop_padding}, seed);
      data.test.emplace(split.test, norm, config.train.batch_size, false, Augment{}, seed);
      if (data.train->num_batches() == 0)
        throw ConfigError(config.source + ": key 'train.batch_size': " + std::to_string(config.train.batch_size) +
                          " is larger than the training set (" + std::to_string(info.n_train) + " samples)");
    } catch (const Error& e) {
      status = std::to_string(int(e.code())) + ":" + e.what();
    }
  }
  t.broadcast_string(status, 0);
  t.broadcast_string(run_dir, 0);
  if (status != "ok") {
    const auto colon = status.find(':');
    const auto code = ExitCode(std::stoi(status.substr(0, colon)));
    throw AgreedError(code, status.substr(colon + 1), t.rank() == 0);
  }
  auto meta = t.rank() == 0 ? pack(info) : torch::zeros({kInfoSize}, torch::kInt64);
  t.ibroadcast(meta, 0, "data description")->wait();
  return unpack(meta);
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

void print_plan(const Config& config, const Transport& t, const Placement& placement, const std::vector<Shape>& shapes,
                const std::vector<int64_t>& layers, const DataInfo& info, const std::string& run_dir) {
  std::printf("bll-train: %s | %s %lld train / %lld test | %s, %lld blocks on %d rank%s (%s), in_flight %lld | run dir %s\n",
              config.source.c_str(), config.data.dataset.c_str(), (long long)info.n_train, (long long)info.n_test,
              config.model.type.c_str(), (long long)config.model.blocks, t.size(), t.size() > 1 ? "s" : "",
              t.name().c_str(), (long long)config.train.in_flight, run_dir.c_str());
  for (int r = 0; r < t.size(); ++r)
    for (int64_t k = placement.first_block(r); k < placement.end_block(r); ++k)
      std::printf("  rank %d: block %lld %s -> %s, %lld layer%s\n", r, (long long)k, shape_str(shapes[size_t(k)]).c_str(),
                  shape_str(shapes[size_t(k) + 1]).c_str(), (long long)layers[size_t(k)],
                  layers[size_t(k)] == 1 ? "" : "s");
  std::fflush(stdout);
}

// Parameters then buffers, in registration order.
std::vector<torch::Tensor> block_state(Block& block) {
  std::vector<torch::Tensor> state;
  for (const auto& p : block->parameters()) state.push_back(p.detach().clone());
  for (const auto& b : block->buffers()) state.push_back(b.detach().clone());
  return state;
}

void save_block(Block& block, const std::string& run_dir) {
  const fs::path path = fs::path(run_dir) / ("block_" + std::to_string(block->index()) + ".pt");
  std::error_code ec;
  fs::create_directories(run_dir, ec);  // ranks on other nodes may not see rank 0's folder yet
  try {
    torch::save(block, path.string());
  } catch (const c10::Error& e) {
    throw RuntimeError(path.string() + ": cannot save block parameters: " + e.what_without_backtrace());
  }
}

// The learners of this rank's blocks, one per span of loss.span blocks.
std::vector<BlockLearner> make_learners(const Config& config, const Placement& placement, int rank,
                                        const DataInfo& info, const TwinCodes* twin, torch::Device device) {
  std::vector<BlockLearner> learners;
  for (int64_t k = placement.first_block(rank); k < placement.end_block(rank);) {
    std::vector<Block> span;
    do {
      span.push_back(make_block(config, k, info.sample_shape, info.num_classes));
      span.back()->to(device);  // before the optimizer sees its parameters
    } while (++k < placement.end_block(rank) && k % config.loss.span != 0);
    learners.emplace_back(config, std::move(span), info.num_classes, twin);
  }
  return learners;
}

// Twin feedback: every rank's twins as they ended the last epoch, into every rank's snapshot
// (models/twin.h). Called by every rank at the same epoch boundary.
void exchange_twins(Transport& t, TwinCodes& twin, std::vector<BlockLearner>& learners) {
  std::vector<Block> hosted;
  for (auto& l : learners) hosted.insert(hosted.end(), l.blocks().begin(), l.blocks().end());
  auto state = twin.hosted_state(hosted);
  t.allreduce_sum(state);
  twin.load(state);
}

// What a run has set up before its learners: the pieces the placement trials, the learners
// and the epochs all use.
struct RunContext {
  const Config& config;
  Transport& t;
  const DataInfo& info;
  RankData& data;
  const TwinCodes* twin;
  const std::vector<Shape>& shapes;
  torch::Dtype label_dtype;
  torch::Device device;
};

// The pipeline's seconds per training batch laid out as `p`: a few batches through throw-away
// learners (2 to warm up, 8 timed); the slowest rank's time, on every rank.
double trial_seconds(const RunContext& run, const Placement& p, const ScheduleOptions& wire) {
  const int rank = run.t.rank();
  auto learners = make_learners(run.config, p, rank, run.info, run.twin, run.device);
  for (auto& l : learners) l.start_epoch(0);
  auto schedule = make_schedule(run.config.train.schedule,
                                {run.t, p, learners, run.shapes, run.info.label_shape, run.label_dtype, wire});
  const int64_t warm = 2, timed = 8, bs = run.config.train.batch_size;
  std::vector<BlockStats> stats(size_t(run.config.model.blocks));
  BatchSource* source = rank == 0 ? &*run.data.train : nullptr;
  if (source) source->start_epoch(0);
  schedule->train(source, warm * bs, bs, stats);
  const double seconds = schedule->train(source, timed * bs, bs, stats).seconds / double(timed);
  auto slowest = torch::zeros({run.t.size()}, torch::kFloat64);
  slowest[rank] = seconds;
  run.t.allreduce_sum(slowest);
  return slowest.max().item<double>();
}

// One epoch: training with the progress bar, evaluation, and the record every rank agrees on.
EpochRecord run_epoch(const RunContext& run, Schedule& schedule, std::vector<BlockLearner>& learners,
                      TwinCodes* twin, int64_t epoch, ProgressBar& bar) {
  const Config& config = run.config;
  const int64_t epochs = config.train.epochs, bs = config.train.batch_size;
  for (auto& l : learners) l.start_epoch(epoch);
  if (twin && epoch > 0) exchange_twins(run.t, *twin, learners);
  if (run.t.rank() == 0) {
    run.data.train->start_epoch(epoch);
    run.data.test->start_epoch(0);
  }
  std::vector<BlockStats> train_stats(size_t(config.model.blocks)), test_stats(size_t(config.model.blocks));
  const std::string label = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs);
  const auto started = std::chrono::steady_clock::now();
  auto progress = [&](int64_t done, int64_t total) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    bar.update(done, total, label, s > 0 ? double(done * bs) / s : 0.0);
  };
  const PhaseTiming tt =
      schedule.train(run.data.train ? &*run.data.train : nullptr, run.info.n_train, bs, train_stats, progress);
  bar.clear();
  const PhaseTiming et = schedule.eval(run.data.test ? &*run.data.test : nullptr, run.info.n_test, bs, test_stats);
  EpochRecord rec = gather_epoch(run.t, epoch, train_stats, test_stats, tt, et,
                                 num_batches(run.info.n_train, bs, true) * bs, learners.front(),
                                 run.info.float_labels != 0);
  if (config.train.end_to_end()) rec.readout_train.clear(), rec.readout_test.clear();  // untrained under bp, fa
  return rec;
}

}  // namespace

TrainResult run_training(const Config& config, Transport& t, const TrainOptions& options) {
  const int rank = t.rank();
  const bool print = options.print && rank == 0;
  std::string run_dir;  // claimed by rank 0 in start_up

  // Where: this rank's blocks (with runtime.blocks_per_rank auto, this checks the rank count).
  Placement placement = agreed(rank, [&] {
    return Placement(config.model.blocks, t.size(), config.runtime.blocks_per_rank, config.loss.span);
  });

  RankData data;
  const DataInfo info = start_up(config, run_dir, t, data);
  const auto shapes =
      agreed(rank, [&] { return block_boundary_shapes(config.model, info.sample_shape, info.num_classes); });
  const auto layers = agreed(rank, [&] {
    require_method(config, info.sample_shape, info.num_classes);
    return block_layer_counts(config.model, info.sample_shape, info.num_classes);
  });

  // What: the learners of this rank's blocks, one per span of loss.span blocks; with twin
  // feedback, the snapshot of every twin that gives their inputs.
  std::optional<TwinCodes> twin;
  if (config.loss.feedback == "twin") {
    twin.emplace(config, info.sample_shape, info.num_classes);
    twin->to(options.device);
  }
  // When: the schedule (BLL's free-running pipeline, or a back-propagation one).
  ScheduleOptions wire;
  wire.in_flight = config.train.in_flight;
  wire.device = options.device;
  wire.message_dtype = message_dtype(config.runtime);
  wire.micro_batches = config.train.micro_batches;
  const RunContext run{config, t, info, data, twin ? &*twin : nullptr, shapes,
                       info.float_labels ? torch::kFloat32 : torch::kInt64, options.device};
  if (config.runtime.auto_placement)
    placement = place_by_cost(config, t, info.sample_shape, info.num_classes, data.train ? &*data.train : nullptr,
                              run.twin, options.device, print,
                              [&](const Placement& p) { return trial_seconds(run, p, wire); });
  std::vector<BlockLearner> learners =
      make_learners(config, placement, rank, info, twin ? &*twin : nullptr, options.device);
  wire.before_step = options.before_step;
  Tracer tracer(config.runtime.trace);
  if (tracer.enabled()) {
    wire.tracer = &tracer;
    for (auto& l : learners) l.set_tracer(&tracer);
  }
  auto schedule =
      make_schedule(config.train.schedule, {t, placement, learners, shapes, info.label_shape, run.label_dtype, wire});

  if (print) print_plan(config, t, placement, shapes, layers, info, run_dir);
  std::optional<MetricsLog> metrics;
  if (rank == 0) metrics.emplace((fs::path(run_dir) / "metrics.jsonl").string());
  ProgressBar bar(print && (config.runtime.progress == "on" ||
                            (config.runtime.progress == "auto" && stdout_is_terminal())));
  TrainResult result;
  for (int r = 0; r < t.size(); ++r) result.blocks_per_rank.push_back(placement.end_block(r) - placement.first_block(r));
  const int64_t epochs = config.train.epochs;
  if (tracer.enabled()) {  // one time origin for every rank's row
    t.barrier();
    tracer.restart();
  }
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    EpochRecord rec = run_epoch(run, *schedule, learners, twin ? &*twin : nullptr, epoch, bar);
    if (metrics) metrics->append(rec);
    if (print) {
      std::printf("%s\n", format_epoch_line(rec, epochs).c_str());
      std::fflush(stdout);
    }
    result.epochs.push_back(rec);
  }

  if (tracer.enabled()) write_trace(t, tracer, (fs::path(run_dir) / "trace.json").string());
  for (auto& l : learners)
    for (auto& block : l.blocks()) {
      result.block_state[block->index()] = block_state(block);
      if (config.runtime.save_params) save_block(block, run_dir);
    }
  if (print && config.runtime.save_params)
    std::printf("bll-train: done; metrics and parameters in %s\n", run_dir.c_str());
  return result;
}

}  // namespace bll
