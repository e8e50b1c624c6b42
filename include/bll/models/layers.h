// The weight layers of the forward networks: torch's Linear and Conv2d, plus, for
// train.method fa, a backward that passes the gradient to the layer's input through a fixed
// random matrix or kernel of the weight's shape instead of the weight itself (feedback
// alignment; the weight's own gradient is unchanged). The random weight is a buffer drawn
// once, Kaiming-uniform, from the block's seeded generator (supplement §2.2.3).
#pragma once

#include <torch/torch.h>

namespace bll {

class DenseImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  torch::Tensor forward(const torch::Tensor& x);
  void use_feedback_alignment();
  const torch::Tensor& feedback_weight() const { return feedback_; }

 private:
  torch::Tensor feedback_;  // undefined unless feedback alignment is on
};
TORCH_MODULE(Dense);

class ConvImpl : public torch::nn::Conv2dImpl {
 public:
  using torch::nn::Conv2dImpl::Conv2dImpl;
  torch::Tensor forward(const torch::Tensor& x);
  void use_feedback_alignment();  // ConfigError for a padding mode it does not cover
  const torch::Tensor& feedback_weight() const { return feedback_; }

 private:
  torch::Tensor feedback_;
};
TORCH_MODULE(Conv);

// Turns on feedback alignment in every Dense and Conv of `module`. Throws ConfigError naming
// `what` and the first layer with weights that it does not cover (normalization layers and
// embeddings are covered: their input gradient needs no weight matrix).
void use_feedback_alignment(torch::nn::Module& module, const std::string& what);

}  // namespace bll
