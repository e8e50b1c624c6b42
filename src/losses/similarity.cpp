#include "bll/losses/similarity.h"

namespace bll {

torch::Tensor similarity_matrix(const torch::Tensor& x) {
  auto flat = x.flatten(1);
  flat = flat - flat.mean(0, /*keepdim=*/true);
  const auto unit = flat / flat.norm(2, 1, /*keepdim=*/true).clamp_min(1e-8);
  return unit.mm(unit.t());
}

torch::Tensor similarity_matching_loss(const torch::Tensor& h, const torch::Tensor& y, int64_t num_classes) {
  const auto target = similarity_matrix(torch::nn::functional::one_hot(y, num_classes).to(h.scalar_type()));
  return (similarity_matrix(h) - target).pow(2).mean();
}

}  // namespace bll
