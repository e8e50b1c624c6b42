// How the replicas of one pipeline stage stay in agreement (runtime.replicas > 1): every rank
// holding stage s trains the same blocks on its own share of each batch, and their updates meet
// over the stage's replica transport (transport/grid.h).
//   sync grads   gradients are averaged before every optimizer step, so the replicas take the
//                same steps and their parameters stay equal;
//   sync params  each replica steps on its own gradients and the parameters are averaged every
//                runtime.sync_every steps of a span (fewer, larger messages; the replicas drift
//                in between).
// At the end of every epoch the replicas' parameters are compared (the largest difference from
// replica 0's is reported), then parameters (sync params) and floating-point buffers (batch-norm
// statistics, which every replica gathers on its own share) are averaged, so that the replicas
// evaluate one model.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "bll/config.h"
#include "bll/transport/transport.h"

namespace bll {

class ReplicaSync {
 public:
  // `group`: the ranks of this rank's stage, one per replica; must outlive this.
  ReplicaSync(Transport& group, const RuntimeConfig& runtime);

  // Around one optimizer step of a span whose trained parameters are `params` (the same list,
  // in the same order, on every replica; the spans of a rank call in the same order everywhere).
  void before_step(const std::vector<torch::Tensor>& params);
  void after_step(const std::vector<torch::Tensor>& params, int64_t steps_taken);

  // Adds up a tensor over the replicas in place (statistics of every replica's share of a batch,
  // such as the closed-form feedback's class means).
  void sum(const torch::Tensor& t) { group_.allreduce_sum(t); }

  // The end of an epoch, over all of this rank's blocks: the largest |parameter - replica 0's|,
  // then the averages described above. Collective over the group.
  double end_epoch(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& buffers);

 private:
  // Replaces each tensor with its mean over the replicas (one all-reduce of a flat copy).
  void average(const std::vector<torch::Tensor>& tensors);

  Transport& group_;
  bool grads_;
  int64_t every_;
};

}  // namespace bll
