// What the forward and feedback blocks compute, and how a network is cut into blocks.
//
// A network is a chain of *units* (a CNN stage, an MLP layer, the classifier head). The config
// splits the chain into N contiguous blocks. Block k owns
//   forward  f_k : alpha_{k-1} -> alpha_k       (its units)
//   feedback g_k : one-hot(y) -> beta_k          (linear, one output per channel of alpha_k)
//   readout  r_k : pool(alpha_k) -> class logits (the local predictive classifier)
// The last block ends with the head; its alpha is the network's logits and it has no feedback
// or readout. Forward and feedback share no weights.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "bll/config.h"

namespace bll {

using Shape = std::vector<int64_t>;  // per-sample shape, e.g. {C, H, W} or {features}

struct UnitSpec {
  enum Kind { ConvStage, Dense, Head } kind;
  int64_t width;   // channels (ConvStage), features (Dense), hidden units (Head; 0 = linear)
  int64_t convs;   // ConvStage: conv-bn-relu layers
};

// The units of the configured network, input to output.
std::vector<UnitSpec> network_units(const ModelConfig& config);

// Half-open unit ranges [first, last) of each of the N blocks: model.split when given, else as
// even as possible with the larger blocks first. Throws ConfigError when N exceeds the units or
// the split does not add up.
std::vector<std::pair<int64_t, int64_t>> split_units(int64_t num_units, const ModelConfig& config);

// The shape a unit produces from `in` (no tensors are made).
Shape unit_output_shape(const UnitSpec& unit, const Shape& in, int64_t num_classes);

// Input shape of every block and, last, the network's output shape.
std::vector<Shape> block_boundary_shapes(const ModelConfig& config, const Shape& input, int64_t num_classes);

// Number of channels of a message with this per-sample shape (its first dimension).
inline int64_t channels_of(const Shape& s) { return s.at(0); }

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& model, const LossConfig& loss, int64_t index, const Shape& input,
            int64_t num_classes);

  torch::Tensor forward(const torch::Tensor& alpha_in) { return body->forward(alpha_in); }
  torch::Tensor feedback(const torch::Tensor& y_onehot) { return feedback_->forward(y_onehot); }
  torch::Tensor readout(const torch::Tensor& alpha);  // local classifier logits

  // Sets g_k to the least-squares fit of the forward means `a` [B, C] from one-hot(y): for a
  // one-hot input that is the mean of `a` over the batch's samples of each class (bias 0).
  // Classes absent from the batch keep their column; present ones blend in with `momentum`.
  void fit_feedback(const torch::Tensor& a, const torch::Tensor& y, double momentum);
  torch::nn::Linear& feedback_layer() { return feedback_; }

  bool is_output() const { return is_output_; }
  int64_t index() const { return index_; }
  const Shape& input_shape() const { return input_; }
  const Shape& output_shape() const { return output_; }

  torch::nn::Sequential body{nullptr};

 private:
  torch::nn::Linear feedback_{nullptr};
  torch::nn::Linear readout_{nullptr};
  int64_t index_;
  bool is_output_;
  int64_t pool_;
  Shape input_, output_;
};
TORCH_MODULE(Block);

// Builds block `index`. Its initial weights depend only on (seed, index), never on which rank
// builds it or what was built before: the global torch generator is re-seeded here.
Block make_block(const Config& config, int64_t index, const Shape& data_shape, int64_t num_classes);

}  // namespace bll
