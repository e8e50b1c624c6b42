// One block together with its optimizer: the unit of local learning. A learner needs only its
// input alpha_{k-1} and the labels; it never sees another block's parameters or gradients.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "bll/config.h"
#include "bll/model.h"

namespace bll {

// Sums over the batches of an epoch, per block. Kept as plain doubles so that ranks can add
// them up with one reduction.
struct BlockStats {
  double loss = 0, kl = 0, pred = 0;  // summed per batch
  double batches = 0;
  double correct1 = 0, correct3 = 0;  // readout (hidden block) or network output (last block)
  double samples = 0;
  double seconds = 0;                 // time spent in this block's steps
  static constexpr int kFields = 8;
  void to(double* out) const;
  static BlockStats from(const double* in);
};

class BlockLearner {
 public:
  BlockLearner(const Config& config, Block block, int64_t num_classes);

  // Sets the learning rate and mixing parameter for a 0-based epoch.
  void start_epoch(int64_t epoch);

  // One local update on a batch: alpha_k = f_k(alpha_in) with the gradient stopped at the
  // input, the block's local loss, backward within the block, optimizer step. Returns alpha_k
  // (detached), the message for the next block.
  torch::Tensor train_step(const torch::Tensor& alpha_in, const torch::Tensor& y, BlockStats& stats);

  // Inference on a batch (eval mode, no gradients); counts the block's correct predictions.
  torch::Tensor eval_step(const torch::Tensor& alpha_in, const torch::Tensor& y, BlockStats& stats);

  Block& block() { return block_; }
  double mixing() const { return m_; }
  double lr() const { return lr_; }

 private:
  bool closed_form_feedback() const;
  void count(const torch::Tensor& logits, const torch::Tensor& y, BlockStats& stats) const;

  const Config& config_;
  Block block_;
  int64_t num_classes_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  double m_ = 1.0, lr_ = 0.0;
};

}  // namespace bll
