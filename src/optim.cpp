#include "bll/optim.h"

#include <cmath>

namespace bll {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<torch::Tensor> params, const OptimConfig& c) {
  if (c.name == "sgd")
    return std::make_unique<torch::optim::SGD>(
        std::move(params), torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay));
  return std::make_unique<torch::optim::Adam>(std::move(params),
                                              torch::optim::AdamOptions(c.lr).weight_decay(c.weight_decay));
}

double learning_rate(const OptimConfig& c, int64_t epoch, int64_t epochs) {
  if (c.schedule != "cosine") return c.lr;
  const double t_max = double(c.t_max > 0 ? c.t_max : epochs);
  const double t = std::min(double(epoch), t_max);
  return c.lr_min + 0.5 * (c.lr - c.lr_min) * (1.0 + std::cos(M_PI * t / t_max));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace bll
