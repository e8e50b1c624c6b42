// The block-local loss (docs/algorithm.md states the equations and the choices behind them).
//
// Messages are channel-wise Gaussians with known standard deviation sigma. For block k < N:
//   a_k   = channel means of alpha_k           [B, C]   (spatial average for feature maps)
//   beta_k = g_k(one-hot y)                    [B, C]
//   rho_k = (1 - m) a_k + m beta_k             posterior mean; m = 1/2 gives the paper's (a+b)/2
//   KL_k  = mean_b sum_j (rho_kj - a_kj)^2 / (2 sigma^2)       = D_KL(rho_k || alpha_k)
//   L_k   = kl_weight * KL_k + pred_weight * CE(r_k(alpha_k), y)
// The last block minimizes CE(alpha_N, y), the network's own loss.
#pragma once

#include <torch/torch.h>

#include "bll/config.h"

namespace bll {

// Posterior-mixing parameter m for a 0-based epoch: 1/(1 + tau*epoch), or the constant.
double mixing_m(const LossConfig& config, int64_t epoch);

// Per-channel means of a message: [B, C, H, W] -> [B, C]; [B, C] unchanged.
torch::Tensor channel_means(const torch::Tensor& alpha);

// Mean of the posterior formed from forward mean a and feedback mean b at mixing m.
torch::Tensor posterior_mean(const torch::Tensor& a, const torch::Tensor& b, double m);

// D_KL(N(mu_q, sigma^2) || N(mu_p, sigma^2)) per element.
torch::Tensor gaussian_kl_fixed_var(const torch::Tensor& mu_q, const torch::Tensor& mu_p, double sigma);

// D_KL(N(mu_q, var_q) || N(mu_p, var_p)) per element, the general closed form.
torch::Tensor gaussian_kl(const torch::Tensor& mu_q, const torch::Tensor& var_q, const torch::Tensor& mu_p,
                          const torch::Tensor& var_p);

struct LocalLoss {
  torch::Tensor total, kl, pred;  // scalars
};

// The loss of a hidden block: alpha = the block's output, beta = its feedback message,
// readout_logits = its local classifier's logits, y = labels.
LocalLoss block_local_loss(const torch::Tensor& alpha, const torch::Tensor& beta, const torch::Tensor& readout_logits,
                           const torch::Tensor& y, double m, const LossConfig& config);

}  // namespace bll
