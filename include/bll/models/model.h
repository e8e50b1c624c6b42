// What the forward and feedback blocks compute, and how a network is cut into blocks.
//
// A model is a chain of *units* (an MLP layer, a CNN stage, a residual unit, the classifier
// head), described by a plan: each unit's shapes, how many weight layers it holds, and a function
// that builds it. Each model family is one file in src/models/ that returns such a plan, plus one
// line in src/models/registry.cpp. The config splits the chain into N contiguous blocks.
// Block k owns
//   forward  f_k : alpha_{k-1} -> alpha_k       (its units)
//   feedback g_k : one-hot(y) -> beta_k          (linear, one output per channel of alpha_k;
//                                                 or the backward twin, models/twin.h)
//   readout  r_k : pool(alpha_k) -> class logits (the local predictive classifier)
// The last block ends with the head; its alpha is the network's logits and it has no feedback
// or readout. Forward and feedback share no weights.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "bll/config.h"

namespace bll {

using Shape = std::vector<int64_t>;  // per-sample shape, e.g. {C, H, W}, {features} or {tokens, d}

struct UnitPlan {
  std::string name;    // names the unit's parameters: "stem", "stage2_unit1", "head", ...
  Shape in, out;       // per-sample shapes
  int64_t layers = 1;  // weight layers (convolutions and linear maps on the main path)
  std::function<torch::nn::Sequential()> build;  // called under the owning block's seed
};

// The units of a model, in order; the last one is the head (it outputs class logits).
using ModelPlan = std::vector<UnitPlan>;

// Builds the plan of `model.type` for per-sample input shape `input`. Throws ConfigError when the
// model cannot take that input or its keys are inconsistent.
ModelPlan model_plan(const ModelConfig& model, const Shape& input, int64_t num_classes);

// Names of the registered model types (model.type accepts exactly these).
const std::vector<std::string>& model_types();

// The units of each block: [first, last) ranges into the plan. model.split gives the units per
// block; otherwise blocks are cut at unit boundaries as close as possible to equal shares of the
// weight layers (ties go to the later boundary, so earlier blocks are the larger). Throws
// ConfigError when the model has fewer units than blocks or the split does not add up.
std::vector<std::pair<int64_t, int64_t>> split_units(const ModelPlan& plan, const ModelConfig& model);

// Per-sample shapes at block boundaries: shapes[k] is the input of block k, shapes[N] the logits.
std::vector<Shape> block_boundary_shapes(const ModelConfig& model, const Shape& input, int64_t num_classes);

// Layer counts of each block (for the plan printout).
std::vector<int64_t> block_layer_counts(const ModelConfig& model, const Shape& input, int64_t num_classes);

// Channels of a message: C of {C, H, W} or {F}; d of a token sequence {T, d} (one message per token).
inline int64_t channels_of(const Shape& s) { return s.size() == 2 ? s.at(1) : s.at(0); }

class BlockImpl : public torch::nn::Module {
 public:
  // Block `index` of the network whose per-sample input shape is `data_shape`.
  BlockImpl(const ModelConfig& model, const LossConfig& loss, int64_t index, const Shape& data_shape,
            int64_t num_classes);

  torch::Tensor forward(torch::Tensor alpha_in);
  torch::Tensor feedback(const torch::Tensor& y_onehot) { return feedback_->forward(y_onehot); }
  // The same for class labels y [B], without forming the one-hot: column y of the weight plus the bias.
  torch::Tensor feedback_of_labels(const torch::Tensor& y) {
    return feedback_->weight.t().index_select(0, y) + feedback_->bias;
  }
  // loss.feedback twin: the twin of block k+1 (models/twin.h) replaces the linear feedback.
  void attach_twin(torch::nn::Sequential twin);
  bool has_twin() const { return !twin_.is_empty(); }
  torch::Tensor twin(const torch::Tensor& input) { return twin_->forward(input); }
  const torch::nn::Sequential& twin_module() const { return twin_; }
  torch::Tensor readout(const torch::Tensor& alpha);  // local classifier logits

  // Sets g_k so that beta_c = to_message(mean of `targets` [B, C] over the batch's samples of
  // class c); bias 0. With the identity that is the least-squares fit for a one-hot input.
  // Classes absent from the batch keep their column; present ones blend in with `momentum`.
  // `sum_replicas` (runtime.replicas) adds up the per-class sums and counts [classes, C + 1] of
  // every replica's share of the batch in place, so that the replicas fit the whole batch.
  void fit_feedback(const torch::Tensor& targets, const torch::Tensor& y, double momentum,
                    const std::function<torch::Tensor(const torch::Tensor&)>& to_message,
                    const std::function<void(const torch::Tensor&)>& sum_replicas = {});
  torch::nn::Linear& feedback_layer() { return feedback_; }

  bool is_output() const { return is_output_; }
  int64_t index() const { return index_; }
  const Shape& input_shape() const { return input_; }
  const Shape& output_shape() const { return output_; }

  // The block's units in order (parameters of the forward path only).
  const std::vector<torch::nn::Sequential>& units() const { return units_; }

 private:
  std::vector<torch::nn::Sequential> units_;
  torch::nn::Linear feedback_{nullptr};
  torch::nn::Sequential twin_{nullptr};
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

// Throws ConfigError, naming the model and the layer, when train.method needs something of the
// model's layers that one of them lacks (fa: a backward with a random feedback weight).
void require_method(const Config& config, const Shape& data_shape, int64_t num_classes);

}  // namespace bll
