#include "bll/run_dir.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "bll/error.h"

namespace bll {
namespace fs = std::filesystem;
namespace {

std::string now_stamp() {
  const std::time_t t = std::time(nullptr);
  std::tm local{};
  localtime_r(&t, &local);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &local);
  return buf;
}

void create_parents(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw RuntimeError("run directory '" + dir.string() + "': cannot create (" + ec.message() + ")");
}

// Points base/latest at `name`, replacing an older link in one rename.
void point_latest(const fs::path& base, const std::string& name) {
  const fs::path tmp = base / (".latest-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_directory_symlink(name, tmp, ec);
  if (!ec) fs::rename(tmp, base / "latest", ec);
  if (ec) fs::remove(tmp, ec);  // a missing link costs nothing but convenience
}

}  // namespace

std::string default_runs_base(const Config& config) {
  const std::string stem = config.source.empty() ? "run" : fs::path(config.source).stem().string();
  return (fs::path("runs") / stem).string();
}

std::string claim_run_dir(const Config& config) {
  const auto& rt = config.runtime;
  if (rt.run_dir.empty()) {
    const fs::path base = default_runs_base(config);
    create_parents(base);
    const std::string stamp = now_stamp();
    // mkdir claims a name atomically: two runs started in the same second get -2, -3, ...
    for (int n = 1; n < 1000; ++n) {
      const std::string name = n == 1 ? stamp : stamp + "-" + std::to_string(n);
      const fs::path dir = base / name;
      if (::mkdir(dir.c_str(), 0777) == 0) {
        point_latest(base, name);
        return dir.string();
      }
      if (errno != EEXIST)
        throw RuntimeError("run directory '" + dir.string() + "': cannot create (" + std::strerror(errno) + ")");
    }
    throw RuntimeError("run directory: no free name under '" + base.string() + "/" + stamp + "'");
  }
  const fs::path dir = rt.run_dir;
  if (fs::exists(dir / "metrics.jsonl")) {
    if (!rt.overwrite)
      throw ConfigError("runtime.run_dir '" + rt.run_dir + "' already holds a run (" + (dir / "metrics.jsonl").string() +
                        "); give another runtime.run_dir, leave it unset for a new one, or set runtime.overwrite=true");
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string f = entry.path().filename().string();
      if (f == "metrics.jsonl" || f == "trace.json" || f == "config.yaml" || (f.rfind("block_", 0) == 0 && entry.path().extension() == ".pt"))
        fs::remove(entry.path(), ec);
      else if (f == "checkpoints")  // the old run's: pruning and a later resume=auto must not mix the two runs
        fs::remove_all(entry.path(), ec);
    }
  }
  create_parents(dir);
  return dir.string();
}

}  // namespace bll
