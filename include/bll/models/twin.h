// The backward twin (loss.feedback: twin; supplement §2.2): the forward network reversed and fed
// with the labels. Twin block k+1 maps the twin message of block k+1 to beta_k and is trained by
// block k's local loss on the rank that owns block k; its gradient stops at its input.
//
// Distribution: beta_k needs the twin messages of every later block, whose twins live on later
// ranks and change as those ranks train. Waiting for them would bring back the backward locking
// BLL removes, so each rank uses a snapshot of every twin taken at the start of the epoch (one
// allreduce at the epoch boundary, where ranks meet anyway). Because a twin's input depends on
// the label alone, the snapshot chain is a table of one code per class and block, computed once
// an epoch; only the block's own twin runs with gradients on every batch. The result does not
// depend on placement or schedule (docs/algorithm.md).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "bll/config.h"
#include "bll/models/model.h"

namespace bll {

// Twin of block k+1 (k = 0..N-2): block k+1's units mirrored in reverse order (src/models/twin.cpp),
// from the twin message of block k+1 (one-hot labels for the last block) to beta_k, shaped like
// alpha_k. Its initial weights depend only on (seed, k).
torch::nn::Sequential make_twin(const Config& config, int64_t k, const Shape& data_shape, int64_t num_classes);

// Layer counts of the twin's blocks from the labels down (forward blocks N-1 .. 1 mirrored).
std::vector<int64_t> twin_layer_counts(const ModelConfig& model, const Shape& data_shape, int64_t num_classes);

class TwinCodes {
 public:
  // Builds a snapshot of every twin (k = 0..N-2), equal on every rank.
  TwinCodes(const Config& config, const Shape& data_shape, int64_t num_classes);

  // The state of the twins this rank trains, in a flat float64 vector laid out for every twin
  // (zeros elsewhere): summed over ranks it is the state of all twins.
  torch::Tensor hosted_state(const std::vector<Block>& blocks) const;
  // The state of every twin, laid out as hosted_state's (checkpoints).
  torch::Tensor state() const;
  // Loads all twins from a summed state and recomputes every block's codes.
  void load(const torch::Tensor& state);

  // Keeps the codes on `device` (the snapshot itself stays on the CPU).
  void to(torch::Device device);

  // The input of block k's twin for labels y: the code of block k+1 for each label ([B] or [B, T]).
  torch::Tensor input(int64_t k, const torch::Tensor& y) const;

 private:
  std::vector<torch::Tensor> state_of(const torch::nn::Module& twin) const;
  void compute_codes();  // codes_[k] = twins_[k](codes_[k + 1]), from the labels down
  std::vector<torch::nn::Sequential> twins_;  // twins_[k] produces beta_k
  std::vector<int64_t> offsets_;              // start of twin k in the flat state; back() = size
  std::vector<torch::Tensor> codes_;          // codes_[k]: [classes, shape of alpha_k]; codes_[N-1] = one-hot
  torch::Tensor one_hot_;                     // [classes, classes], on the CPU
  torch::Device device_ = torch::kCPU;        // where codes_ live
};

}  // namespace bll
