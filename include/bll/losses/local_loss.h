// The block-local loss (docs/algorithm.md states the equations and the choices behind them).
//
// For a hidden block k, with messages of one exponential family (losses/family.h):
//   a_k    = channel means of alpha_k           [B, C]   (spatial average for feature maps)
//   b_k    = g_k(one-hot y)                     [B, C]   the feedback message
//   gamma  = natural(a_k) + m · natural(b_k)             rho_k ∝ alpha_k · beta_k^m
//   KL_k   = mean_b sum_j D_KL(rho_kj || alpha_kj)
//   L_k    = kl_weight · KL_k + pred_weight · CE(r_k(alpha_k), y)
// The last block minimizes CE(alpha_N, y), the network's own loss.
#pragma once

#include <torch/torch.h>

#include "bll/config.h"
#include "bll/losses/family.h"

namespace bll {

// Posterior-mixing parameter m for a 0-based epoch: 1/(1 + tau*epoch), or the constant.
double mixing_m(const LossConfig& config, int64_t epoch);

// Per-channel means of a message: [B, C, H, W] -> [B, C]; [B, C] unchanged.
torch::Tensor channel_means(const torch::Tensor& alpha);

// D_KL(N(mu_q, var_q) || N(mu_p, var_p)) per element, the general closed form (a reference).
torch::Tensor gaussian_kl(const torch::Tensor& mu_q, const torch::Tensor& var_q, const torch::Tensor& mu_p,
                          const torch::Tensor& var_p);

struct LocalLoss {
  torch::Tensor total, kl, pred;  // scalars
  torch::Tensor posterior;        // message parameter of rho_k [B, C]
};

// The loss of a hidden block: alpha = the block's output, beta = its feedback message [B, C],
// readout_logits = its local classifier's logits, y = labels.
LocalLoss block_local_loss(const Family& family, const torch::Tensor& alpha, const torch::Tensor& beta,
                           const torch::Tensor& readout_logits, const torch::Tensor& y, double m,
                           const LossConfig& config);

// The same from the channel means a = channel_means(alpha) [B, C], with the predictive term
// already computed (a cross-entropy or a reconstruction loss).
LocalLoss local_loss_of_means(const Family& family, const torch::Tensor& a, const torch::Tensor& beta,
                              const torch::Tensor& pred, double m, const LossConfig& config);

// What a block passes on under posterior mixing (loss.forward_posterior): alpha with each
// channel shifted so that its mean becomes the posterior's parameter, alpha + (rho - a).
torch::Tensor posterior_message(const torch::Tensor& alpha, const torch::Tensor& a, const torch::Tensor& rho);

}  // namespace bll
