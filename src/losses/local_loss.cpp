#include "bll/losses/local_loss.h"

namespace bll {

double mixing_m(const LossConfig& c, int64_t epoch) {
  if (c.mixing == "constant") return c.mixing_m;
  return 1.0 / (1.0 + c.tau * double(epoch));
}

torch::Tensor channel_means(const torch::Tensor& alpha) {
  return alpha.dim() > 2 ? alpha.flatten(2).mean(2) : alpha;
}

torch::Tensor gaussian_kl(const torch::Tensor& mu_q, const torch::Tensor& var_q, const torch::Tensor& mu_p,
                          const torch::Tensor& var_p) {
  return 0.5 * (torch::log(var_p / var_q) + (var_q + (mu_q - mu_p).pow(2)) / var_p - 1.0);
}

LocalLoss block_local_loss(const Family& family, const torch::Tensor& alpha, const torch::Tensor& beta,
                           const torch::Tensor& readout_logits, const torch::Tensor& y, double m,
                           const LossConfig& c) {
  return block_local_loss(family, alpha, beta, torch::nn::functional::cross_entropy(readout_logits, y), m, c);
}

LocalLoss block_local_loss(const Family& family, const torch::Tensor& alpha, const torch::Tensor& beta,
                           const torch::Tensor& pred, double m, const LossConfig& c) {
  const auto a = channel_means(alpha);
  const auto gamma = posterior_natural(family, a, beta, m);
  auto kl = kl_divergence(family, gamma, family.natural(a)).sum(1).mean();
  return {c.kl_weight * kl + c.pred_weight * pred, kl, pred, family.parameter(gamma)};
}

torch::Tensor posterior_message(const torch::Tensor& alpha, const torch::Tensor& a, const torch::Tensor& rho) {
  auto shift = rho - a;
  while (shift.dim() < alpha.dim()) shift = shift.unsqueeze(-1);
  return alpha + shift;
}

}  // namespace bll
