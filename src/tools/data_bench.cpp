// bll-data-bench: how fast the feeding rank's data source delivers training batches, and the
// process's peak memory while it does.
//   bll-data-bench CONFIG.yaml [section.key=value ...]
// Reads every training batch of one epoch (data.train_limit bounds it) as the trainer does,
// normalized, after one batch of warm-up, and prints one JSON line: images/s, batches, the
// peak resident set size.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bll/config.h"
#include "bll/data/sources.h"
#include "bll/error.h"
#include "bll/runtime.h"
#include "tool_main.h"

namespace {

const char* kUsage =
    "usage: bll-data-bench CONFIG.yaml [section.key=value ...]\n"
    "Times one epoch of training batches from CONFIG's data source (one JSON line).\n";

int run(const std::vector<std::string>& args) {
  const bll::Config config = bll::load_config(args[0], {args.begin() + 1, args.end()});
  bll::configure_threads(config.runtime, 1);  // as one rank of bll-train on this node
  if (config.runtime.keep_freed_memory) bll::keep_freed_memory();
  bll::OpenData data = bll::open_data(config);
  bll::BatchSource& train = *data.train;
  train.start_epoch(0);
  const int64_t batches = train.num_batches();
  if (batches < 2) throw bll::ConfigError(config.source + ": bll-data-bench needs at least 2 training batches");
  train.get(0);  // warm-up: the pool starts, the first batch is read
  const auto start = std::chrono::steady_clock::now();
  int64_t images = 0;
  for (int64_t t = 1; t < batches; ++t) images += train.get(t).x.size(0);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("{\"dataset\": \"%s\", \"workers\": %lld, \"image_size\": %lld, \"batch_size\": %lld, \"batches\": %lld, "
              "\"images\": %lld, \"seconds\": %.3f, \"images_per_sec\": %.1f, \"peak_rss_mb\": %.1f}\n",
              config.data.dataset.c_str(), (long long)config.data.workers, (long long)config.data.image_size,
              (long long)config.train.batch_size, (long long)(batches - 1), (long long)images, s, double(images) / s,
              double(usage.ru_maxrss) / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return bll::tool_main("bll-data-bench", kUsage, argc, argv, 1, run); }
