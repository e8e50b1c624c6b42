#include "bll/losses/reconstruction.h"

#include "bll/error.h"

namespace bll {

UncertaintyTerms uncertainty_terms(const torch::Tensor& output, const torch::Tensor& target) {
  if (output.sizes() != target.sizes() || output.dim() != 4 || output.size(2) % 2 != 0)
    throw RuntimeError("uncertainty_terms: output and target must be [B, C, 2H, W] of one shape");
  const int64_t h = output.size(2) / 2;
  const auto mu = output.narrow(2, 0, h), s = output.narrow(2, h, h);
  const auto mu_t = target.narrow(2, 0, h), s_t = target.narrow(2, h, h);
  const auto err = (mu_t - mu).pow(2);
  auto per_sample = [](const torch::Tensor& t) { return t.flatten(1).mean(1); };
  return {per_sample(0.5 * (s - s_t + (s_t.exp() + err) / s.exp() - 1)), per_sample((err - s.exp()).pow(2)),
          per_sample(s)};
}

}  // namespace bll
