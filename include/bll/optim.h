// Per-block optimizers and learning-rate schedules.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "bll/config.h"

namespace bll {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> params, const OptimConfig& config);

// Learning rate for a 0-based epoch: constant, or cosine annealing from lr to lr_min over t_max
// epochs (t_max = 0 means the whole run of `epochs`).
double learning_rate(const OptimConfig& config, int64_t epoch, int64_t epochs);

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace bll
