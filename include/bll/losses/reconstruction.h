// The uncertainty autoencoder's losses (supplement §2.1). An output or target image [B, C, 2H, W]
// holds the mean in its top half and the log-variance s in its bottom half. Per sample, averaged
// over the H x W pixels of a half (choice: a mean, so that values do not scale with the image):
//   S15  0.5 (s - s* + (e^{s*} + (mu* - mu)^2) / e^{s} - 1)   the Gaussian KL, trained on
//   S16  ((mu* - mu)^2 - e^{s})^2                              MSE matching: error vs predicted variance
//   S17  s                                                     the mean predicted log-variance
#pragma once

#include <torch/torch.h>

namespace bll {

struct UncertaintyTerms {
  torch::Tensor s15, s16, s17;  // [B] each
};

UncertaintyTerms uncertainty_terms(const torch::Tensor& output, const torch::Tensor& target);

}  // namespace bll
