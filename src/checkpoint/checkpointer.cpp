#include "checkpointer.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "bll/error.h"
#include "bll/host_reads.h"
#include "bll/stop.h"

namespace bll {
namespace fs = std::filesystem;
namespace {

constexpr int kTagReport = 401;
constexpr int64_t kReportFields = 3;  // per file: first block, bytes, CRC

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::string bytes;
  archive.save_to([&](const void* data, size_t n) {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  return bytes;
}

// The statistics of a span's blocks: [blocks, BlockStats::kFields] float64.
torch::Tensor span_stats(BlockLearner& l, const std::vector<BlockStats>& stats) {
  auto out = torch::zeros({int64_t(l.blocks().size()), BlockStats::kFields}, torch::kFloat64);
  for (size_t i = 0; i < l.blocks().size(); ++i)
    stats[size_t(l.blocks()[i]->index())].to(out[int64_t(i)].data_ptr<double>());
  return out;
}

void make_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw RuntimeError("checkpoint: cannot create folder '" + dir + "': " +
                       (ec ? ec.message() : std::string("a file of that name is in the way")));
}

}  // namespace

// A checkpoint whose manifest waits for the other ranks' reports (rank 0 only).
struct Checkpointer::Pending {
  int64_t step;
  Manifest manifest;
  std::string dir;
  std::vector<std::pair<int, torch::Tensor>> reports;  // world rank, report
  std::vector<WorkPtr> works;
};

Checkpointer::Checkpointer(const Setup& s)
    : config_(s.config), grid_(s.grid), placement_(s.placement), control_(s.grid.world.duplicate()), run_dir_(s.run_dir), n_(s.batches_per_epoch),
      total_(s.batches_per_epoch * s.config.train.epochs),
      lag_(int64_t(s.grid.pipeline.size()) * s.config.train.in_flight + 2), twin_(s.twin), normalization_(s.normalization),
      // Replicas hold equal parameters under sync grads, but each gathers its own batch-norm
      // statistics until the epoch ends (and under sync params its own parameters): each saves.
      per_replica_(s.grid.num_replicas > 1) {}

Checkpointer::~Checkpointer() = default;

std::string Checkpointer::stop_report() const {
  const int64_t epoch = (stop_end_ - 1) / n_;
  return std::string("stopped on request (") + (stop_signal_ ? signal_name(stop_signal_) : "on another rank") +
         ") after step " + std::to_string(stop_end_) + " (epoch " + std::to_string(epoch + 1) + ", batch " +
         std::to_string(stop_end_ - epoch * n_) + " of " + std::to_string(n_) + "); checkpoint " +
         (fs::path(checkpoints_dir(run_dir_)) / checkpoint_name(stop_end_)).string() +
         "; run again with checkpoint.resume=auto to go on";
}

TrainHooks Checkpointer::hooks(int64_t epoch, int64_t first, std::vector<BlockLearner>& learners,
                               std::vector<BlockStats>& stats, ProgressFn progress) {
  TrainHooks h;
  h.progress = std::move(progress);
  h.first = first;
  h.batch_done = [this, epoch, &learners, &stats](int64_t t) { batch_done(epoch, t, learners, stats); };
  h.end = [this, epoch] { return stop_end_ < 0 ? n_ : std::max<int64_t>(0, stop_end_ - epoch * n_); };
  return h;
}

void Checkpointer::batch_done(int64_t epoch, int64_t t, std::vector<BlockLearner>& learners,
                              std::vector<BlockStats>& stats) {
  const int64_t step = epoch * n_ + t + 1;
  agree(step, false);
  const int64_t every = config_.checkpoint.every_steps;
  if (step == stop_end_) save(step, stop_signal_ ? signal_name(stop_signal_) : "stop_request", learners, stats);
  else if (step == total_) save(step, "end", learners, stats);
  else if (every > 0 && step % every == 0) save(step, "every_steps", learners, stats);
  poll(false);
}

void Checkpointer::agree(int64_t step, bool drain) {
  Transport& world = *control_;
  auto decide = [&](int64_t at) {
    if (stop_end_ >= 0) return;
    stop_end_ = at;
    stop_signal_ = stop_requested();  // 0: the request reached another rank
  };
  if (world.size() == 1) {  // nobody to agree with: stop after this batch
    if (!drain && stop_requested()) decide(step);
    return;
  }
  if (!drain) {
    auto flag = torch::full({1}, int64_t(stop_requested() != 0), torch::kInt64);
    votes_.push_back({step, flag, world.iallreduce_sum(flag, "the stop vote of step " + std::to_string(step))});
  }
  while (!votes_.empty() && (drain || votes_.front().step <= step - lag_ || votes_.front().work->test())) {
    Vote& v = votes_.front();
    v.work->wait();
    if (host_control_value(v.flag) > 0) decide(v.step + lag_ + config_.train.in_flight + 2);
    votes_.pop_front();
  }
}

bool Checkpointer::end_phase(int64_t epoch) {
  agree(0, true);
  return stop_end_ >= 0 && stop_end_ <= (epoch + 1) * n_ && stop_end_ < total_;
}

void Checkpointer::save(int64_t step, const std::string& reason, std::vector<BlockLearner>& learners,
                        std::vector<BlockStats>& stats) {
  struct Clock {  // adds the time of this save to seconds_, however it ends
    std::chrono::steady_clock::time_point from;
    double& total;
    ~Clock() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count(); }
  } clock{std::chrono::steady_clock::now(), seconds_};
  const std::string dir = (fs::path(checkpoints_dir(run_dir_)) / checkpoint_name(step)).string();
  const bool lead = grid_.world.rank() == 0;
  std::vector<CheckpointFile> files;
  auto add = [&](const std::string& name, const std::string& bytes) -> const CheckpointFile& {
    write_atomically((fs::path(dir) / name).string(), bytes);
    files.push_back({name, bytes.size(), crc32_of(bytes)});
    return files.back();
  };
  std::vector<int64_t> report;
  make_dir(dir);
  sync_folder(checkpoints_dir(run_dir_));  // the new step_* folder itself survives a crash
  if (!learners.empty()) learners.front().flush_stats(stats);  // the statistics up to this step
  for (auto& l : learners) {
    torch::serialize::OutputArchive archive;
    l.save(archive);
    archive.write("stats", span_stats(l, stats));
    const CheckpointFile& f = add(span_file_name(l.first_block(), grid_.replica, per_replica_), archive_bytes(archive));
    report.insert(report.end(), {l.first_block(), int64_t(f.bytes), int64_t(f.crc)});
  }
  if (!lead) {
    auto t = torch::tensor(report, torch::kInt64);
    reports_.emplace_back(t, control_->isend(t, 0, kTagReport, "the files of checkpoint " + checkpoint_name(step)));
    return;
  }
  if (twin_) {
    torch::serialize::OutputArchive archive;
    archive.write("state", twin_->state());
    add("twin.pt", archive_bytes(archive));
  }
  if (!normalization_.empty()) add(kNormalizationFile, normalization_);
  add("config.yaml", config_to_yaml(config_));
  auto p = std::make_unique<Pending>();
  p->step = step;
  p->dir = dir;
  Manifest& m = p->manifest;
  m.step = step, m.epoch = (step - 1) / n_, m.batch = (step - 1) % n_ + 1;
  m.batches_per_epoch = n_, m.epochs = config_.train.epochs, m.blocks = config_.model.blocks;
  m.span = config_.loss.span, m.replicas = grid_.num_replicas, m.per_replica = per_replica_, m.reason = reason;
  m.files = std::move(files);
  for (int w = 1; w < grid_.world.size(); ++w) {
    // Every rank writes its spans: a replica's batch-norm statistics are its own until the epoch ends.
    auto t = torch::zeros({placement_.spans_of(w % grid_.pipeline.size()) * kReportFields}, torch::kInt64);
    p->works.push_back(control_->irecv(t, w, kTagReport, "rank " + std::to_string(w) + "'s report of checkpoint " +
                                                               checkpoint_name(step)));
    p->reports.emplace_back(w, t);
  }
  pending_.push_back(std::move(p));
}

void Checkpointer::poll(bool wait) {
  while (!reports_.empty() && (wait || reports_.front().second->test())) {
    reports_.front().second->wait();
    reports_.pop_front();
  }
  while (!pending_.empty()) {
    Pending& p = *pending_.front();
    for (auto& w : p.works)
      if (!wait && !w->test()) return;
    for (auto& w : p.works) w->wait();
    const int S = grid_.pipeline.size();
    for (auto& [w, t] : p.reports)
      for (int64_t i = 0; i < t.numel(); i += kReportFields) {
        const auto a = t.accessor<int64_t, 1>();
        p.manifest.files.push_back({span_file_name(a[i], w / S, per_replica_), uint64_t(a[i + 1]), uint32_t(a[i + 2])});
      }
    write_atomically((fs::path(p.dir) / kManifestName).string(), format_manifest(p.manifest));
    prune(p.step);
    pending_.pop_front();
  }
}

void Checkpointer::prune(int64_t newest) {
  int64_t complete = 0;
  for (const auto& dir : list_checkpoints(run_dir_)) {
    const int64_t step = std::stoll(fs::path(dir).filename().string().substr(5));
    if (step > newest) continue;  // still being written
    const bool done = fs::exists(fs::path(dir) / kManifestName);
    if (done && ++complete <= config_.checkpoint.keep) continue;
    std::error_code ec;
    fs::remove_all(dir, ec);  // a checkpoint left over is only disk space; not worth failing the run
  }
  try {
    sync_folder(checkpoints_dir(run_dir_));  // the removals, too
  } catch (const RuntimeError&) {
    // as above: a folder that cannot be synced after a removal costs nothing but disk space
  }
}

void Checkpointer::finish() { poll(true); }

}  // namespace bll
