// The CUDA runtime half of InputStager: host-to-device copies on a stream of their own. Built
// where the CUDA runtime is (BLL_HAVE_CUDART), which needs no CUDA-enabled libtorch.
#pragma once

#include <memory>

#include "bll/device.h"

namespace bll {

#ifdef BLL_HAVE_CUDART
std::unique_ptr<InputStager::Copier> make_cuda_copier(torch::Device device, int rank);
#endif

}  // namespace bll
