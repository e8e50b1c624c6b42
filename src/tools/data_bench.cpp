// bll-data-bench: how fast the feeding rank's data source delivers training batches, and the
// process's peak memory while it does.
//   bll-data-bench CONFIG.yaml [section.key=value ...] [--dump DIR]
// Reads every training batch of one epoch (data.train_limit bounds it) as the trainer does,
// normalized, after one batch of warm-up, and prints one JSON line: images/s, batches, the
// peak resident set size, and the peak of its anonymous part (sampled every 16 batches: the
// memory the loader allocates, without the pages of mapped shards, which the kernel can drop).
// With --dump (image data sets), it writes the first training batch instead: DIR/batch.f32
// (float32 [B, C, S, S], as the trainer gets it) and DIR/batch.json (each image's file, label,
// crop box and flip), so that another library's transform can be compared on the same boxes
// (tests/torchvision_test.py).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bll/config.h"
#include "bll/data/image_source.h"
#include "bll/data/sources.h"
#include "bll/error.h"
#include "bll/runtime.h"
#include "tool_main.h"

namespace {

const char* kUsage =
    "usage: bll-data-bench CONFIG.yaml [section.key=value ...] [--dump DIR]\n"
    "Times one epoch of training batches from CONFIG's data source (one JSON line).\n"
    "--dump DIR: writes the first training batch of an image data set instead (batch.f32, and\n"
    "batch.json with each image's file, label, crop box and flip).\n";

// This process's anonymous resident memory in MiB (RssAnon of /proc/self/status; 0 elsewhere).
double anonymous_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::stod(line.substr(8)) / 1024.0;
  return 0.0;
}

// The first training batch and what made each of its images.
int dump(const bll::Config& config, bll::BatchSource& train, const std::string& dir) {
  auto* images = dynamic_cast<bll::ImageSource*>(&train);
  if (!images) throw bll::ConfigError(config.source + ": --dump needs an image data set (data.dataset folder or packed)");
  std::filesystem::create_directories(dir);
  const torch::Tensor x = train.get(0).x.contiguous();
  {
    std::ofstream out(dir + "/batch.f32", std::ios::binary);
    out.write(static_cast<const char*>(x.data_ptr()), std::streamsize(x.nbytes()));
    if (!out) throw bll::RuntimeError(dir + "/batch.f32: cannot write");
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const bll::ImageRecord& r : images->records(0)) {
    const bll::Box& b = r.crop.box;
    rows.push_back({{"file", r.name}, {"label", r.label}, {"box", {b.top, b.left, b.height, b.width}}, {"flip", r.crop.flip}});
  }
  std::ofstream out(dir + "/batch.json");
  out << nlohmann::json{{"shape", x.sizes().vec()}, {"rows", rows}}.dump(1) << "\n";
  if (!out) throw bll::RuntimeError(dir + "/batch.json: cannot write");
  std::printf("bll-data-bench: wrote batch 0 (%lld images) to %s\n", (long long)x.size(0), dir.c_str());
  return 0;
}

int run(std::vector<std::string> args) {
  std::string dump_dir;
  for (size_t i = 1; i < args.size(); ++i)
    if (args[i] == "--dump") {
      if (i + 1 == args.size()) throw bll::ConfigError("--dump needs a folder");
      dump_dir = args[i + 1];
      args.erase(args.begin() + long(i), args.begin() + long(i) + 2);
      break;
    }
  const bll::Config config = bll::load_config(args[0], {args.begin() + 1, args.end()});
  bll::configure_threads(config.runtime, 1);  // as one rank of bll-train on this node
  if (config.runtime.keep_freed_memory) bll::keep_freed_memory();
  bll::OpenData data = bll::open_data(config);
  bll::BatchSource& train = *data.train;
  train.start_epoch(0);
  if (!dump_dir.empty()) return dump(config, train, dump_dir);
  const int64_t batches = train.num_batches();
  if (batches < 2) throw bll::ConfigError(config.source + ": bll-data-bench needs at least 2 training batches");
  train.get(0);  // warm-up: the pool starts, the first batch is read
  const auto start = std::chrono::steady_clock::now();
  int64_t images = 0;
  double peak_anon = anonymous_mb();
  for (int64_t t = 1; t < batches; ++t) {
    images += train.get(t).x.size(0);
    if (t % 16 == 0 || t + 1 == batches) peak_anon = std::max(peak_anon, anonymous_mb());
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("{\"dataset\": \"%s\", \"workers\": %lld, \"image_size\": %lld, \"batch_size\": %lld, \"batches\": %lld, "
              "\"images\": %lld, \"seconds\": %.3f, \"images_per_sec\": %.1f, \"peak_rss_mb\": %.1f, \"peak_anon_mb\": %.1f}\n",
              config.data.dataset.c_str(), (long long)config.data.workers, (long long)config.data.image_size,
              (long long)config.train.batch_size, (long long)(batches - 1), (long long)images, s, double(images) / s,
              double(usage.ru_maxrss) / 1024.0, peak_anon);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return bll::tool_main("bll-data-bench", kUsage, argc, argv, 1, run); }
