// The CUDA runtime halves of InputStager (host to device) and of the mpi transport's staging
// (device to host): copies on streams of their own. Built
// where the CUDA runtime is (BLL_HAVE_CUDART), which needs no CUDA-enabled libtorch.
#pragma once

#include <memory>

#include "bll/device.h"
#include "bll/transport/mpi.h"

namespace bll {

#ifdef BLL_HAVE_CUDART
std::unique_ptr<InputStager::Copier> make_cuda_copier(torch::Device device, int rank);

// The mpi transport's device-to-host staging (runtime.mpi_staging async): copies on a stream of
// their own, each after the kernels queued before it on libtorch's default stream.
std::shared_ptr<HostStager> make_cuda_host_stager(torch::Device device, int rank);
#endif

}  // namespace bll
