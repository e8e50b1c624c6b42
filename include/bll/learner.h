// The unit of local learning: a span of consecutive blocks (loss.span of them; one in plain BLL)
// with one optimizer. A learner needs only its input alpha_{k-1} and the labels; it never sees
// another span's parameters or gradients. Inside a span gradients flow across block boundaries
// (BLL(x) of the supplement, Table 3); they stop at the span's input.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "bll/config.h"
#include "bll/losses/family.h"
#include "bll/losses/local_loss.h"
#include "bll/models/model.h"
#include "bll/placement.h"
#include "bll/trace.h"
#include "bll/models/twin.h"
#include "bll/replicas.h"
#include "bll/step_stats.h"

namespace bll {

// Sums over the batches of an epoch, per block. For a sequence task (labels [B, T]) every token
// is a sample of the local loss and of the accuracy counts. Kept as plain doubles so that ranks can add
// them up with one reduction. The steps count batches, samples and seconds here at once; what
// the device computes (losses, correct counts, S15-S17) reaches these fields when the rank's
// StepStats is flushed (flush_stats).
struct BlockStats {
  double loss = 0, kl = 0, pred = 0;  // summed per batch
  double batches = 0;
  double correct1 = 0, correct3 = 0;  // readout (hidden block) or network output (last block)
  double samples = 0;                 // samples, or tokens for a sequence task
  double seconds = 0;                 // time spent in this block's steps
  double seq_correct = 0, sequences = 0;  // sequence task: sequences with every token right
  double s15 = 0, s16 = 0, s17 = 0;       // autoencode: sums over samples (losses/reconstruction.h)
  double params = 0;                      // parameters the block trains (set once per block)
  static constexpr int kFields = 14;
  void to(double* out) const;
  static BlockStats from(const double* in);
};

class BlockLearner {
 public:
  // `blocks`: consecutive blocks, in order.
  // `twin`: the twin codes of this rank (loss.feedback twin), else null; must outlive the learner.
  // `step_stats`: where the steps add their device-side statistics, shared by a rank's learners
  // (null: a StepStats of the learner's own).
  BlockLearner(const Config& config, std::vector<Block> blocks, int64_t num_classes, const TwinCodes* twin = nullptr,
               std::shared_ptr<StepStats> step_stats = nullptr);

  // Sets the learning rate and mixing parameter for a 0-based epoch.
  void start_epoch(int64_t epoch);

  // One local update on a batch: the span's blocks in order with the gradient stopped at the
  // span's input, each block's loss, backward within the span, optimizer step. Returns the
  // message for the next span (detached): alpha, or under loss.forward_posterior the posterior.
  // Adds to stats[k] for each block k of the span.
  torch::Tensor train_step(const torch::Tensor& alpha_in, const torch::Tensor& y, std::vector<BlockStats>& stats);

  // End-to-end back-propagation (train.method bp), a micro-batch at a time: the span's forward
  // in training mode with the graph kept; the output block's predictive loss times `scale`
  // (its share of the mini-batch), scored into stats; and the update once the mini-batch's
  // gradients have added up.
  torch::Tensor forward_graph(const torch::Tensor& x);
  torch::Tensor output_loss(const torch::Tensor& out, const torch::Tensor& y, double scale, std::vector<BlockStats>& stats);
  void zero_grad();
  void step();

  // Inference on a batch (eval mode, no gradients, alpha passed on); counts correct predictions.
  torch::Tensor eval_step(const torch::Tensor& alpha_in, const torch::Tensor& y, std::vector<BlockStats>& stats);

  // Completes `stats` with what the steps of this rank's learners summed on the device since the
  // last flush: one read back to the host (runtime.log_every, the end of a phase, a checkpoint).
  // Throws RuntimeError naming the block and the batches when a loss was not finite.
  void flush_stats(std::vector<BlockStats>& stats) { step_stats_->flush(stats); }

  std::vector<Block>& blocks() { return blocks_; }
  int64_t first_block() const { return blocks_.front()->index(); }
  double mixing() const { return m_; }
  // Records forward and loss, backward and optimizer step as timeline events (runtime.trace).
  void set_tracer(Tracer* tracer) { tracer_ = tracer; }
  // runtime.replicas > 1: the replicas of this span agree through `sync` at every step.
  void set_replica_sync(ReplicaSync* sync) { sync_ = sync; }
  const std::vector<torch::Tensor>& trained_parameters() const { return trained_; }
  // Checkpoints: every block (parameters and buffers), the optimizer's state and the step count.
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);
  double lr() const { return lr_; }

 private:
  bool closed_form_feedback(const Block& block) const;
  // The forward of the span from x (replaced by the span's output) and the sum of its blocks'
  // local losses; records each block's losses and scores in stats.
  torch::Tensor local_losses(torch::Tensor& x, const torch::Tensor& y, std::vector<BlockStats>& stats);
  // A block's prediction of the target: the output block's alpha or a hidden block's readout
  // (shaped like y when reconstructing); its predictive loss (cross-entropy or S15); the
  // feedback message from the labels or target; and the accuracy or S15-S17 sums it adds.
  torch::Tensor prediction(Block& block, const torch::Tensor& alpha, const torch::Tensor& y) const;
  torch::Tensor predictive_loss(const torch::Tensor& prediction, const torch::Tensor& y) const;
  torch::Tensor feedback_message(Block& block, const torch::Tensor& y) const;
  // A hidden block's loss under greedy (its readout's) and predsim (readout and similarity
  // matching, weighted by train.sim_weight; the similarity term is reported as kl).
  LocalLoss readout_loss(const torch::Tensor& alpha, const torch::Tensor& pred, const torch::Tensor& y) const;
  // Adds a step of `block` to the statistics: `values` (its total, KL and predictive losses;
  // none in evaluation) and the scores of `prediction`, in one device operation.
  void record(const Block& block, const torch::Tensor& prediction, const torch::Tensor& y, BlockStats& stats,
              std::vector<torch::Tensor> values = {}) const;

  const Config& config_;
  std::vector<Block> blocks_;
  int64_t num_classes_;
  std::unique_ptr<Family> family_;
  std::shared_ptr<StepStats> step_stats_;
  torch::Tensor zero_;  // a 0 on the device, for the loss terms a block does not have
  const TwinCodes* twin_;
  bool reconstruct_;  // data.task autoencode: targets are images
  bool bf16_;                // runtime.precision bf16: forward and local loss under autocast
  at::MemoryFormat format_;  // runtime.memory_format on the blocks' device; inputs are put in it
  Tracer* tracer_ = nullptr;
  std::vector<torch::Tensor> trained_;  // what the optimizer updates, in its order
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  ReplicaSync* sync_ = nullptr;
  int64_t steps_ = 0;
  double m_ = 1.0, lr_ = 0.0;
};

// The learners of `rank`'s blocks under `placement`, one per span of loss.span blocks, on `device`,
// sharing one StepStats.
std::vector<BlockLearner> make_learners(const Config& config, const Placement& placement, int rank,
                                        const Shape& sample_shape, int64_t num_classes, const TwinCodes* twin,
                                        torch::Device device);

}  // namespace bll
