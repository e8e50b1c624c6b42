// Resuming: which checkpoint checkpoint.resume names, and loading a rank's spans from it.
#include <cstdio>
#include <filesystem>

#include "bll/error.h"
#include "bll/run_dir.h"
#include "checkpointer.h"

namespace bll {
namespace fs = std::filesystem;
namespace {

void say(const std::string& line) {
  std::printf("bll-train: %s\n", line.c_str());
  std::fflush(stdout);
}

// Empty when the run of `config` can go on from `checkpoint`; otherwise why not.
std::string unusable(const std::string& checkpoint, const Config& config) {
  std::string why = check_checkpoint(checkpoint);
  if (!why.empty()) return why;
  const std::string path = (fs::path(checkpoint) / "config.yaml").string();
  try {
    const std::string diff = training_difference(parse_config(read_bytes(path), path, {}), config);
    if (!diff.empty()) return "trained with another configuration (" + diff + ", saved vs now)";
  } catch (const Error& e) {
    return std::string("its configuration: ") + e.what();
  }
  return "";
}

ResumePoint point(const std::string& checkpoint) {
  const Manifest m = read_manifest(checkpoint);
  say("resuming from " + checkpoint + " at step " + std::to_string(m.step) + " (epoch " + std::to_string(m.epoch + 1) +
      ", after batch " + std::to_string(m.batch) + " of " + std::to_string(m.batches_per_epoch) + ")");
  return {checkpoint, fs::path(checkpoint).parent_path().parent_path().string()};
}

// Run directories to search, newest first: runtime.run_dir, or every run of this config.
std::vector<std::string> run_dirs(const Config& config) {
  if (!config.runtime.run_dir.empty()) return {config.runtime.run_dir};
  std::vector<std::string> runs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(default_runs_base(config), ec))
    if (e.is_directory() && !e.is_symlink()) runs.push_back(e.path().string());
  std::sort(runs.rbegin(), runs.rend());  // named by date-time
  return runs;
}

}  // namespace

std::optional<ResumePoint> find_resume_point(const Config& config) {
  const std::string& how = config.checkpoint.resume;
  if (how == "never") return std::nullopt;
  if (how != "auto") {
    const fs::path p(how);
    if (!fs::is_directory(p))
      throw ConfigError(config.source + ": key 'checkpoint.resume': '" + how + "': no such folder");
    const std::vector<std::string> candidates = checkpoints_at(how);
    if (candidates.empty())
      throw ConfigError(config.source + ": key 'checkpoint.resume': '" + how +
                        "' is neither a checkpoint nor a run directory with checkpoints");
    for (const auto& c : candidates) {
      const std::string why = unusable(c, config);
      if (why.empty()) return point(c);
      if (candidates.size() == 1)
        throw ConfigError(config.source + ": key 'checkpoint.resume': cannot resume from '" + c + "': " + why);
      say("skipping checkpoint " + c + ": " + why);
    }
    throw ConfigError(config.source + ": key 'checkpoint.resume': no usable checkpoint in '" + how + "'");
  }
  for (const auto& run : run_dirs(config))
    for (const auto& c : list_checkpoints(run)) {
      const std::string why = unusable(c, config);
      if (!why.empty()) {
        say("skipping checkpoint " + c + ": " + why);
        continue;
      }
      if (read_manifest(c).finished()) {
        say("the newest checkpoint, " + c + ", ends a finished run; starting a new run");
        return std::nullopt;
      }
      return point(c);
    }
  say("no checkpoint to resume from; starting from scratch");
  return std::nullopt;
}

Resumed load_checkpoint(const std::string& checkpoint, const Config& config, const Grid& grid,
                        std::vector<BlockLearner>& learners, TwinCodes* twin, torch::Device device) {
  Resumed r{read_manifest(checkpoint), std::vector<BlockStats>(size_t(config.model.blocks))};
  const Manifest& m = r.manifest;
  // Each replica loads its own spans; with another replica count, every replica starts from
  // replica 0's (the run goes on, but not bit for bit as the uninterrupted one would).
  const int64_t from = m.per_replica && m.replicas == grid.num_replicas ? grid.replica : 0;
  if (m.replicas != grid.num_replicas && grid.world.rank() == 0)
    std::printf("bll-train: warning: %s was saved by %lld replica(s) and this run has %d: every replica starts from "
                "replica 0's state, so the run will not match an uninterrupted one bit for bit\n",
                checkpoint.c_str(), (long long)m.replicas, grid.num_replicas);
  auto read_checked = [&](const std::string& name) {
    const CheckpointFile* f = m.find(name);
    if (!f) throw RuntimeError(checkpoint + ": the manifest lists no " + name);
    const std::string path = (fs::path(checkpoint) / name).string();
    std::string bytes = read_bytes(path);
    if (bytes.size() != f->bytes || crc32_of(bytes) != f->crc)
      throw RuntimeError(path + ": does not match the manifest (size or CRC); the checkpoint is corrupt");
    return bytes;
  };
  const bool own_stats = from == grid.replica;  // a replica's statistics so far, when it saved them itself
  for (auto& l : learners) {
    const std::string name = span_file_name(l.first_block(), from, m.per_replica);
    const std::string bytes = read_checked(name);
    torch::serialize::InputArchive archive;
    try {
      archive.load_from(bytes.data(), bytes.size(), device);
      l.load(archive);
      torch::Tensor stats;
      archive.read("stats", stats);
      stats = stats.to(torch::kCPU).contiguous();
      for (size_t i = 0; i < l.blocks().size() && own_stats; ++i)
        r.stats[size_t(l.blocks()[i]->index())] = BlockStats::from(stats[int64_t(i)].data_ptr<double>());
    } catch (const c10::Error& e) {
      throw RuntimeError(checkpoint + "/" + name + ": cannot load: " + e.what_without_backtrace());
    }
  }
  if (twin) {
    const std::string bytes = read_checked("twin.pt");
    torch::serialize::InputArchive archive;
    archive.load_from(bytes.data(), bytes.size());
    torch::Tensor state;
    archive.read("state", state);
    twin->load(state);
  }
  return r;
}

}  // namespace bll
