// Process-wide settings of a rank: intra-op threads and the memory allocator.
#pragma once

#include "bll/config.h"

namespace bll {

// Keeps glibc malloc from returning large freed blocks to the kernel. Training allocates and frees
// the same multi-megabyte activations every step; with glibc's defaults each one is a fresh mmap
// whose pages fault in zeroed; keeping it made the 4-block CNN 2.2x faster here
// (docs/benchmarks.md). Returns false if glibc refused a setting.
bool keep_freed_memory();

// Intra-op threads for this rank: runtime.threads, else the node's cores shared evenly among
// the ranks on the node (at least 1). Applies it to torch and returns it.
int configure_threads(const RuntimeConfig& config, int ranks_on_node);

}  // namespace bll
