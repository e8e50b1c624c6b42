#include "bll/runtime.h"

#include <dlfcn.h>
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

namespace {

// OpenBLAS is looked up at run time, not linked: libtorch reaches it through libblas.so.3, which
// may as well be another BLAS (the reference one, or MKL in a PyTorch wheel).
int set_openblas_threads(int n) {
  using SetThreads = void (*)(int);
  using GetThreads = int (*)();
  auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (!set || !get) return -1;
  set(n);
  return get();
}

}  // namespace

ThreadSetup configure_threads(const RuntimeConfig& config, int ranks_on_node) {
  ThreadSetup setup;
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  setup.threads = config.threads > 0 ? int(config.threads) : std::max(1, cores / std::max(1, ranks_on_node));
  torch::set_num_threads(setup.threads);
  if (config.blas_threads > 0) setup.blas_threads = set_openblas_threads(int(config.blas_threads));
  return setup;
}

}  // namespace bll
