// Checks a CUDA runtime call; the error names the rank, the call, the file and line, and CUDA's
// error string. For sources built against the CUDA runtime (BLL_HAVE_CUDART).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "bll/error.h"

namespace bll {

inline std::string source_line(const char* file, int line) { return std::string(" at ") + file + ":" + std::to_string(line); }

}  // namespace bll

#define BLL_CUDA_CHECK(rank, call)                                                                     \
  do {                                                                                                 \
    cudaError_t bll_e_ = (call);                                                                       \
    if (bll_e_ != cudaSuccess)                                                                         \
      throw ::bll::RuntimeError("rank " + std::to_string(rank) + ": " #call " failed" +                \
                                ::bll::source_line(__FILE__, __LINE__) + ": " + cudaGetErrorString(bll_e_)); \
  } while (0)
