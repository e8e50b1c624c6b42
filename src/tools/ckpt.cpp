// bll-ckpt: look into, check and export the checkpoints of bll-train.
//   bll-ckpt inspect CHECKPOINT|RUN_DIR   position, blocks, files, sizes and whether each checks out
//   bll-ckpt verify CHECKPOINT|RUN_DIR    exit 0 when every checkpoint named is complete and intact
//   bll-ckpt export CHECKPOINT|RUN_DIR OUT.safetensors
//                                         the whole network in one file (bll-eval, Python: docs/checkpoints.md)
// A run directory stands for its checkpoints (inspect, verify) or its newest complete one (export).
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bll/checkpoint.h"
#include "bll/error.h"

namespace {
namespace fs = std::filesystem;

const char* kUsage =
    "usage: bll-ckpt inspect CHECKPOINT|RUN_DIR\n"
    "       bll-ckpt verify CHECKPOINT|RUN_DIR\n"
    "       bll-ckpt export CHECKPOINT|RUN_DIR OUT.safetensors\n"
    "A checkpoint is a folder <run dir>/checkpoints/step_NNNNNNNNN written by bll-train.\n"
    "Exit codes: 0 ok, 1 a checkpoint is incomplete or corrupt, 2 usage error.\n";

// The checkpoints a path names: itself, or those of a run directory (newest first).
std::vector<std::string> named(const std::string& path) {
  if (!fs::is_directory(path)) throw bll::ConfigError(path + ": no such folder");
  auto all = bll::checkpoints_at(path);
  if (all.empty()) throw bll::ConfigError(path + ": neither a checkpoint nor a run directory with checkpoints");
  return all;
}

int inspect(const std::string& path) {
  int bad = 0;
  for (const auto& dir : named(path)) {
    const std::string why = bll::check_checkpoint(dir);
    std::printf("%s: %s\n", dir.c_str(), why.empty() ? "complete, every file matches its CRC" : ("NOT USABLE: " + why).c_str());
    if (!why.empty()) {
      ++bad;
      if (why.rfind("no ", 0) == 0) continue;  // no manifest to describe
    }
    const bll::Manifest m = bll::read_manifest(dir);
    std::printf("  step %lld: epoch %lld of %lld, after batch %lld of %lld (%s)%s\n", (long long)m.step,
                (long long)m.epoch + 1, (long long)m.epochs, (long long)m.batch, (long long)m.batches_per_epoch,
                m.reason.c_str(), m.finished() ? ", the end of the run" : "");
    std::printf("  %lld blocks, loss.span %lld, saved by %lld replica%s%s\n", (long long)m.blocks, (long long)m.span,
                (long long)m.replicas, m.replicas > 1 ? "s" : "", m.per_replica ? " (each its own spans)" : "");
    uint64_t total = 0;
    for (const auto& f : m.files) {
      std::printf("  %-22s %12llu bytes  crc32 %08x\n", f.name.c_str(), (unsigned long long)f.bytes, f.crc);
      total += f.bytes;
    }
    std::printf("  %-22s %12llu bytes\n", "total", (unsigned long long)total);
    if (why.empty()) {
      int64_t params = 0, block = -1;
      std::string line;
      for (const auto& [name, t] : bll::checkpoint_network(dir)) {
        const int64_t k = std::stoll(name.substr(5, name.find('.') - 5));
        if (k != block && block >= 0) {
          std::printf("  block %lld: %lld values\n", (long long)block, (long long)params);
          params = 0;
        }
        block = k, params += t.numel();
      }
      if (block >= 0) std::printf("  block %lld: %lld values\n", (long long)block, (long long)params);
    }
  }
  return bad ? 1 : 0;
}

int verify(const std::string& path) {
  int bad = 0;
  for (const auto& dir : named(path)) {
    const std::string why = bll::check_checkpoint(dir);
    std::printf("%s %s%s\n", why.empty() ? "ok  " : "BAD ", dir.c_str(), why.empty() ? "" : (": " + why).c_str());
    bad += !why.empty();
  }
  return bad ? 1 : 0;
}

int export_network(const std::string& path, const std::string& out) {
  std::string chosen;
  for (const auto& dir : named(path))
    if (bll::check_checkpoint(dir).empty()) {
      chosen = dir;
      break;
    }
  if (chosen.empty()) throw bll::RuntimeError(path + ": no complete checkpoint (bll-ckpt verify says why)");
  const bll::Manifest m = bll::read_manifest(chosen);
  const auto tensors = bll::checkpoint_network(chosen);
  const std::string config = bll::read_bytes((fs::path(chosen) / "config.yaml").string());
  bll::write_safetensors(out, tensors,
                         {{"format", "bll"}, {"checkpoint", chosen}, {"step", std::to_string(m.step)},
                          {"blocks", std::to_string(m.blocks)}, {"config", config}});
  std::printf("bll-ckpt: %s: %zu tensors of %lld blocks from %s (step %lld)\n", out.c_str(), tensors.size(),
              (long long)m.blocks, chosen.c_str(), (long long)m.step);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 2 && args[0] == "inspect") return inspect(args[1]);
    if (args.size() == 2 && args[0] == "verify") return verify(args[1]);
    if (args.size() == 3 && args[0] == "export") return export_network(args[1], args[2]);
    if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
      std::printf("%s", kUsage);
      return 0;
    }
    std::fprintf(stderr, "%s", kUsage);
    return bll::kExitUsage;
  } catch (const bll::Error& e) {
    std::fprintf(stderr, "bll-ckpt: error: %s\n", e.what());
    return e.code() == bll::kExitUsage ? bll::kExitUsage : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bll-ckpt: error: %s\n", e.what());
    return 1;
  }
}
