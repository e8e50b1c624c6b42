#include "bll/loss.h"

namespace bll {

double mixing_m(const LossConfig& c, int64_t epoch) {
  if (c.mixing == "constant") return c.mixing_m;
  return 1.0 / (1.0 + c.tau * double(epoch));
}

torch::Tensor channel_means(const torch::Tensor& alpha) {
  return alpha.dim() > 2 ? alpha.flatten(2).mean(2) : alpha;
}

torch::Tensor posterior_mean(const torch::Tensor& a, const torch::Tensor& b, double m) {
  return a * (1.0 - m) + b * m;
}

torch::Tensor gaussian_kl_fixed_var(const torch::Tensor& mu_q, const torch::Tensor& mu_p, double sigma) {
  return (mu_q - mu_p).pow(2) / (2.0 * sigma * sigma);
}

torch::Tensor gaussian_kl(const torch::Tensor& mu_q, const torch::Tensor& var_q, const torch::Tensor& mu_p,
                          const torch::Tensor& var_p) {
  return 0.5 * (torch::log(var_p / var_q) + (var_q + (mu_q - mu_p).pow(2)) / var_p - 1.0);
}

LocalLoss block_local_loss(const torch::Tensor& alpha, const torch::Tensor& beta, const torch::Tensor& readout_logits,
                           const torch::Tensor& y, double m, const LossConfig& c) {
  const auto a = channel_means(alpha);
  const auto rho = posterior_mean(a, beta, m);
  auto kl = gaussian_kl_fixed_var(rho, a, c.sigma).sum(1).mean();
  auto pred = torch::nn::functional::cross_entropy(readout_logits, y);
  return {c.kl_weight * kl + c.pred_weight * pred, kl, pred};
}

}  // namespace bll
