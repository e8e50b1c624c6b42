// Process-wide settings of a rank: intra-op threads, the BLAS library's threads and the memory
// allocator.
#pragma once

#include "bll/config.h"

namespace bll {

// Keeps glibc malloc from returning large freed blocks to the kernel. Training allocates and frees
// the same multi-megabyte activations every step; with glibc's defaults each one is a fresh mmap
// whose pages fault in zeroed; keeping it made the 4-block CNN 2.2x faster here
// (docs/benchmarks.md). Returns false if glibc refused a setting.
bool keep_freed_memory();

struct ThreadSetup {
  int threads = 1;        // torch's intra-op threads (OpenMP)
  int blas_threads = -1;  // threads OpenBLAS was told to use; -1: not OpenBLAS, or left alone
};

// Intra-op threads for this rank: runtime.threads, else the node's cores shared evenly among
// the ranks on the node (at least 1), applied to torch. Then runtime.blas_threads, applied to
// OpenBLAS when it is the BLAS libtorch calls: the pthreads build of OpenBLAS runs its own
// thread pool beside torch's OpenMP one, and the two spin against each other for the same
// cores (1 made one 2-thread process of the 4-block CNN 1.46x faster here, docs/benchmarks.md).
ThreadSetup configure_threads(const RuntimeConfig& config, int ranks_on_node);

}  // namespace bll
