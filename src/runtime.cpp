#include "bll/runtime.h"

#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <thread>

namespace bll {

bool keep_freed_memory() {
  bool ok = true;
  // Serve large blocks from the heap (32 MiB is glibc's ceiling for this threshold), and never
  // trim the top of the heap back to the kernel.
  ok &= mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1;
  ok &= mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  ok &= mallopt(M_TOP_PAD, 64 * 1024 * 1024) == 1;
  return ok;
}

int configure_threads(const RuntimeConfig& config, int ranks_on_node) {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = config.threads > 0 ? int(config.threads) : std::max(1, cores / std::max(1, ranks_on_node));
  torch::set_num_threads(threads);
  return threads;
}

}  // namespace bll
