#include "bll/losses/local_loss.h"

namespace bll {

double mixing_m(const LossConfig& c, int64_t epoch) {
  if (c.mixing == "constant") return c.mixing_m;
  return 1.0 / (1.0 + c.tau * double(epoch));
}

torch::Tensor channel_means(const torch::Tensor& alpha) {
  if (alpha.dim() <= 2) return alpha;
  // A mean over the trailing dimensions, not over flatten(2): flattening a channels-last map
  // copies it, forward and backward.
  std::vector<int64_t> dims;
  for (int64_t d = 2; d < alpha.dim(); ++d) dims.push_back(d);
  return alpha.mean(dims);
}

torch::Tensor gaussian_kl(const torch::Tensor& mu_q, const torch::Tensor& var_q, const torch::Tensor& mu_p,
                          const torch::Tensor& var_p) {
  return 0.5 * (torch::log(var_p / var_q) + (var_q + (mu_q - mu_p).pow(2)) / var_p - 1.0);
}

LocalLoss block_local_loss(const Family& family, const torch::Tensor& alpha, const torch::Tensor& beta,
                           const torch::Tensor& readout_logits, const torch::Tensor& y, double m,
                           const LossConfig& c) {
  return local_loss_of_means(family, channel_means(alpha), beta,
                             torch::nn::functional::cross_entropy(readout_logits, y), m, c);
}

LocalLoss local_loss_of_means(const Family& family, const torch::Tensor& a, const torch::Tensor& beta,
                              const torch::Tensor& pred, double m, const LossConfig& c) {
  const auto rho = family.posterior(a, beta, m);
  auto kl = rho.kl.sum(1).mean();
  return {c.kl_weight * kl + c.pred_weight * pred, kl, pred, rho.parameter};
}

torch::Tensor posterior_message(const torch::Tensor& alpha, const torch::Tensor& a, const torch::Tensor& rho) {
  auto shift = rho - a;
  while (shift.dim() < alpha.dim()) shift = shift.unsqueeze(-1);
  return alpha + shift;
}

}  // namespace bll
