#include "bll/trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>


#include "bll/auto_placement.h"
#include "bll/data/dataset.h"
#include "bll/data/loader.h"
#include "bll/device.h"
#include "bll/error.h"
#include "bll/host_reads.h"
#include "bll/learner.h"
#include "bll/schedules/schedule.h"
#include "bll/placement.h"
#include "bll/replicas.h"
#include "checkpoint/checkpointer.h"
#include "epoch_record.h"
#include "start_up.h"
#include "bll/models/model.h"
#include "bll/models/twin.h"

namespace bll {
namespace fs = std::filesystem;
namespace {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

void print_plan(const Config& config, const Grid& grid, const Placement& placement, const std::vector<Shape>& shapes,
                const std::vector<int64_t>& layers, const DataInfo& info, const std::string& run_dir) {
  const Transport& t = grid.pipeline;
  std::string ranks = std::to_string(t.size()) + " rank" + (t.size() > 1 ? "s" : "");
  if (grid.num_replicas > 1)
    ranks = std::to_string(grid.world.size()) + " ranks = " + std::to_string(t.size()) + " stage" +
            (t.size() > 1 ? "s" : "") + " x " + std::to_string(grid.num_replicas) + " replicas (sync " +
            config.runtime.sync + ")";
  std::printf("bll-train: %s | %s %lld train / %lld test | %s, %lld blocks on %s (%s), in_flight %lld | run dir %s\n",
              config.source.c_str(), config.data.dataset.c_str(), (long long)info.n_train, (long long)info.n_test,
              config.model.type.c_str(), (long long)config.model.blocks, ranks.c_str(), t.name().c_str(),
              (long long)config.train.in_flight, run_dir.c_str());
  for (int r = 0; r < t.size(); ++r)
    for (int64_t k = placement.first_block(r); k < placement.end_block(r); ++k)
      std::printf("  %s %d: block %lld %s -> %s, %lld layer%s\n", grid.num_replicas > 1 ? "stage" : "rank", r,
                  (long long)k, shape_str(shapes[size_t(k)]).c_str(), shape_str(shapes[size_t(k) + 1]).c_str(),
                  (long long)layers[size_t(k)], layers[size_t(k)] == 1 ? "" : "s");
  std::fflush(stdout);
}

// The network of `config` on data of this shape: each block's input shape and layer count.
// Throws ConfigError where the network or the method cannot take that data.
struct ModelFit {
  std::vector<Shape> shapes;
  std::vector<int64_t> layers;
};
ModelFit fit_model(const Config& config, const Shape& sample, int64_t num_classes) {
  try {
    ModelFit fit;
    fit.shapes = block_boundary_shapes(config.model, sample, num_classes);
    require_method(config, sample, num_classes);
    fit.layers = block_layer_counts(config.model, sample, num_classes);
    return fit;
  } catch (const ConfigError& e) {  // the models name the key; the file is the configuration's
    throw ConfigError(config.source + ": " + e.what());
  }
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
// and the epochs all use. Sizes are this replica's: its share of every training batch and of
// the test set.
struct RunContext {
  const Config& config;
  const Grid& grid;
  const DataInfo& info;
  RankData& data;
  const TwinCodes* twin;
  const std::vector<Shape>& shapes;
  torch::Dtype label_dtype;
  torch::Device device;
  int64_t batch, train_samples, test_samples;
};

// The pipeline's seconds per training batch laid out as `p`: a few batches through throw-away
// learners (2 to warm up, 8 timed); the slowest rank's time, on every rank of the pipeline.
double trial_seconds(const RunContext& run, const Placement& p, const ScheduleOptions& wire) {
  Transport& t = run.grid.pipeline;
  auto learners = make_learners(run.config, p, t.rank(), run.info.sample_shape, run.info.num_classes, run.twin, run.device);
  for (auto& l : learners) l.start_epoch(0);
  auto schedule = make_schedule(run.config.train.schedule,
                                {t, p, learners, run.shapes, run.info.label_shape, run.label_dtype, wire});
  const int64_t warm = 2, timed = 8, bs = run.batch;
  std::vector<BlockStats> stats(size_t(run.config.model.blocks));
  BatchSource* source = run.data.train ? &*run.data.train : nullptr;
  if (source) source->start_epoch(0);
  schedule->train(source, warm * bs, bs, stats);
  const double seconds = schedule->train(source, timed * bs, bs, stats).seconds / double(timed);
  auto slowest = torch::zeros({t.size()}, torch::kFloat64);
  slowest[t.rank()] = seconds;
  t.allreduce_sum(slowest);
  return read_scalar(slowest.max());
}

// Where the blocks go: runtime.blocks_per_rank, or with `auto` the best of a few trials. The
// trials run in replica 0, whose choice every replica takes, so that the ranks of a stage
// always hold the same blocks.
Placement place(const RunContext& run, const ScheduleOptions& wire, bool print, Placement placement) {
  const Config& config = run.config;
  const Grid& grid = run.grid;
  if (!config.runtime.auto_placement) return placement;
  auto trials = [&] {
    return place_by_cost(config, grid.pipeline, run.info.sample_shape, run.info.num_classes,
                         run.data.train ? &*run.data.train : nullptr, run.twin, run.device, print,
                         [&](const Placement& p) { return trial_seconds(run, p, wire); });
  };
  if (!grid.replicas) return trials();
  // Replica 0's choice goes to every replica: each stage's block count, then its exit code (0:
  // placed), so that a failure of the trials ends the other replicas too instead of leaving them
  // waiting here.
  const int S = grid.pipeline.size();
  auto plan = torch::zeros({S + 1}, torch::kInt64);
  std::exception_ptr failure;
  if (grid.replica == 0) {
    try {
      placement = trials();
      for (int r = 0; r < S; ++r) plan[r] = placement.end_block(r) - placement.first_block(r);
    } catch (const AgreedError& e) {
      plan[S] = int64_t(e.code());
      failure = std::current_exception();
    }
  }
  grid.replicas->ibroadcast(plan, 0, "replica 0's placement")->wait();
  if (failure) std::rethrow_exception(failure);
  const int64_t* p = plan.data_ptr<int64_t>();
  if (p[S] != 0)
    throw AgreedError(ExitCode(p[S]), "replica 0 could not place the blocks (its ranks report why)", false);
  return Placement(config.model.blocks, S, std::vector<int64_t>(p, p + S), config.loss.span);
}

// The end of an epoch's training for the replicas: how far they drifted, then one model.
double end_epoch_sync(ReplicaSync& sync, std::vector<BlockLearner>& learners) {
  std::vector<torch::Tensor> params, buffers;
  for (auto& l : learners) {
    params.insert(params.end(), l.trained_parameters().begin(), l.trained_parameters().end());
    for (auto& block : l.blocks())
      for (const auto& b : block->buffers()) buffers.push_back(b);
  }
  return sync.end_epoch(params, buffers);
}

// Where an epoch's training starts: batch 0 with no statistics, or where a checkpoint was cut.
struct EpochStart {
  int64_t first = 0;
  std::vector<BlockStats> stats;  // the epoch's statistics up to `first`; empty = none
};

// Loads this rank's spans from `checkpoint`; returns the epoch to go on in and sets where it starts.
int64_t resume(const std::string& checkpoint, const RunContext& run, std::vector<BlockLearner>& learners,
               TwinCodes* twin, EpochStart& start) {
  Resumed r = load_checkpoint(checkpoint, run.config, run.grid, learners, twin, run.device);
  const int64_t batches_per_epoch = run.train_samples / run.batch;
  if (r.manifest.batches_per_epoch != batches_per_epoch)
    throw RuntimeError(checkpoint + ": saved with " + std::to_string(r.manifest.batches_per_epoch) +
                       " batches per epoch, but this run has " + std::to_string(batches_per_epoch));
  start = {r.manifest.batch, std::move(r.stats)};
  return r.manifest.epoch;
}

// One epoch: training with the progress bar, evaluation, and the record every rank agrees on;
// nullopt when the run stopped on request during it (with its checkpoint saved).
std::optional<EpochRecord> run_epoch(const RunContext& run, Schedule& schedule, std::vector<BlockLearner>& learners,
                                     TwinCodes* twin, ReplicaSync* sync, Checkpointer& checkpoints, int64_t epoch,
                                     const EpochStart& start, ProgressBar& bar) {
  const Config& config = run.config;
  const int64_t epochs = config.train.epochs, bs = run.batch;
  for (auto& l : learners) l.start_epoch(epoch);
  if (twin && epoch > 0 && start.first == 0) exchange_twins(run.grid.pipeline, *twin, learners);  // else resumed
  if (run.data.train) {
    run.data.train->start_epoch(epoch);
    run.data.test->start_epoch(0);
  }
  std::vector<BlockStats> train_stats(size_t(config.model.blocks)), test_stats(size_t(config.model.blocks));
  if (!start.stats.empty()) train_stats = start.stats;
  const std::string label = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs);
  const auto started = std::chrono::steady_clock::now();
  const double replicas = run.grid.num_replicas;
  const int64_t every = config.runtime.log_every;
  auto progress = [&](int64_t done, int64_t total) {
    if (done % every != 0 && done != total) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    bar.update(done, total, label, s > 0 ? replicas * double((done - start.first) * bs) / s : 0.0);
  };
  // The statistics come back from the device every runtime.log_every steps (the divergence check
  // with them) and at the end of the phase; the steps in between never wait for it.
  TrainHooks hooks = checkpoints.hooks(epoch, start.first, learners, train_stats, progress);
  hooks.batch_done = [&, checkpoint = std::move(hooks.batch_done)](int64_t t) {
    if ((t + 1) % every == 0) learners.front().flush_stats(train_stats);
    checkpoint(t);
  };
  PhaseTiming tt = schedule.train(run.data.train ? &*run.data.train : nullptr, run.train_samples, bs, train_stats, hooks);
  learners.front().flush_stats(train_stats);
  tt.checkpoint_s = checkpoints.take_seconds();
  bar.clear();
  if (checkpoints.end_phase(epoch)) return std::nullopt;
  if (run.grid.replica == 0)  // once per block
    for (auto& l : learners)
      for (auto& block : l.blocks())
        for (const auto& p : block->parameters())
          if (p.requires_grad()) train_stats[size_t(block->index())].params += double(p.numel());
  const double divergence = sync ? end_epoch_sync(*sync, learners) : 0.0;
  const PhaseTiming et = schedule.eval(run.data.test ? &*run.data.test : nullptr, run.test_samples, bs, test_stats);
  learners.front().flush_stats(test_stats);
  const int64_t replaced = run.data.train ? run.data.train->replaced_files() + run.data.test->replaced_files() : 0;
  EpochRecord rec = gather_epoch(run.grid.world, epoch, train_stats, test_stats, tt, et,
                                 tt.batches * bs * run.grid.num_replicas, learners.front(),
                                 run.info.float_labels != 0, divergence, replaced);
  rec.replicas = run.grid.num_replicas;
  if (config.train.end_to_end()) rec.readout_train.clear(), rec.readout_test.clear();  // untrained under bp, fa
  return rec;
}

}  // namespace

TrainResult run_training(const Config& config, Transport& t, const TrainOptions& options) {
  if (config.runtime.replicas != 1)
    throw ConfigError(config.source + ": key 'runtime.replicas': " + std::to_string(config.runtime.replicas) +
                      " replicas need a grid of transports (bll-train makes one)");
  return run_training(config, Grid{t, t, nullptr, 0, 1}, options);
}

TrainResult run_training(const Config& config, const Grid& grid, const TrainOptions& options) {
  if (config.runtime.replicas != grid.num_replicas)
    throw RuntimeError("runtime.replicas is " + std::to_string(config.runtime.replicas) + " but the grid has " +
                       std::to_string(grid.num_replicas) + " replicas");
  Transport& t = grid.pipeline;
  const int rank = t.rank(), world_rank = grid.world.rank();
  const bool lead = world_rank == 0, print = options.print && lead;
  std::string run_dir, resume_from;  // chosen by world rank 0 in start_up

  // Where: this rank's blocks (with runtime.blocks_per_rank auto, this checks the stage count
  // now and places by trial once the data is in).
  const Placement given = agreed(world_rank, [&] {
    return Placement(config.model.blocks, t.size(), config.runtime.blocks_per_rank, config.loss.span);
  });

  // A network that cannot take the data is refused before the data set is read, where the
  // configuration alone tells the data's shape (the built-in data sets, whose loading checks
  // that shape); elsewhere once the data is in.
  std::optional<ModelFit> early;
  if (const auto known = known_shape(config.data))
    early = agreed(world_rank, [&] { return fit_model(config, known->sample, known->num_classes); });
  RankData data;
  const DataInfo info = start_up(config, run_dir, resume_from, grid, data);
  const ModelFit fit =
      early ? *early : agreed(world_rank, [&] { return fit_model(config, info.sample_shape, info.num_classes); });
  const std::vector<Shape>& shapes = fit.shapes;
  const std::vector<int64_t>& layers = fit.layers;

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
  const int64_t batch = config.train.batch_size / grid.num_replicas;
  const RunContext run{config,
                       grid,
                       info,
                       data,
                       twin ? &*twin : nullptr,
                       shapes,
                       info.float_labels ? torch::kFloat32 : torch::kInt64,
                       options.device,
                       batch,
                       num_batches(info.n_train, config.train.batch_size, true) * batch,
                       share_of(info.n_test, grid.replica, grid.num_replicas).count};
  const Placement placement = place(run, wire, print, given);
  std::vector<BlockLearner> learners =
      make_learners(config, placement, rank, info.sample_shape, info.num_classes, twin ? &*twin : nullptr, options.device);
  std::optional<ReplicaSync> sync;
  if (grid.replicas) {
    sync.emplace(*grid.replicas, config.runtime);
    for (auto& l : learners) l.set_replica_sync(&*sync);
  }
  wire.before_step = options.before_step;
  Tracer tracer(config.runtime.trace);
  if (tracer.enabled()) {
    wire.tracer = &tracer;
    for (auto& l : learners) l.set_tracer(&tracer);
  }
  auto schedule =
      make_schedule(config.train.schedule, {t, placement, learners, shapes, info.label_shape, run.label_dtype, wire});

  // A resumed run: this rank's spans as the checkpoint left them, and where training goes on.
  const int64_t batches_per_epoch = run.train_samples / batch;
  int64_t first_epoch = 0;
  EpochStart start;
  if (!resume_from.empty()) first_epoch = resume(resume_from, run, learners, twin ? &*twin : nullptr, start);
  Checkpointer checkpoints({config, grid, placement, run_dir, batches_per_epoch, twin ? &*twin : nullptr,
                            data.normalization});

  if (print) print_plan(config, grid, placement, shapes, layers, info, run_dir);
  std::optional<MetricsLog> metrics;
  if (lead) metrics.emplace((fs::path(run_dir) / "metrics.jsonl").string(), first_epoch);
  ProgressBar bar(print && (config.runtime.progress == "on" ||
                            (config.runtime.progress == "auto" && stdout_is_terminal())));
  TrainResult result;
  for (int r = 0; r < t.size(); ++r) result.blocks_per_rank.push_back(placement.end_block(r) - placement.first_block(r));
  const int64_t epochs = config.train.epochs;
  if (tracer.enabled()) {  // one time origin for every rank's row
    t.barrier();
    tracer.restart();
  }
  for (int64_t epoch = first_epoch; epoch < epochs; ++epoch) {
    const std::optional<EpochRecord> done = run_epoch(run, *schedule, learners, twin ? &*twin : nullptr,
                                                      sync ? &*sync : nullptr, checkpoints, epoch, start, bar);
    start = {};
    if (!done) {  // stopped on request: every rank agreed on the batch and saved there
      checkpoints.finish();
      throw AgreedError(kExitStopped, checkpoints.stop_report(), lead);
    }
    const EpochRecord& rec = *done;
    if (metrics) metrics->append(rec);
    if (print) {
      std::printf("%s\n", format_epoch_line(rec, epochs).c_str());
      std::fflush(stdout);
    }
    result.epochs.push_back(rec);
  }

  checkpoints.finish();

  // Replica 0 writes the timelines and the parameters (the replicas hold one model).
  const bool writes = grid.replica == 0;
  if (tracer.enabled() && writes) write_trace(t, tracer, (fs::path(run_dir) / "trace.json").string());
  for (auto& l : learners)
    for (auto& block : l.blocks()) {
      result.block_state[block->index()] = block_state(block);
      if (config.runtime.save_params && writes) save_block(block, run_dir);
    }
  if (print && config.runtime.save_params)
    std::printf("bll-train: done; metrics and parameters in %s\n", run_dir.c_str());
  return result;
}

}  // namespace bll
