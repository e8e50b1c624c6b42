// When things happen on one rank: BLL's free-running pipeline.
//
// Rank 0 reads a batch, broadcasts its labels to every rank and pushes the input through its
// blocks; each rank receives alpha from the rank before it, updates its own blocks at once and
// sends its output on. A rank depends only on earlier ranks (alpha) and rank 0 (labels); it
// never waits for a later rank except for flow control: at most `in_flight` of its sends may be
// outstanding, and it pre-posts that many receives, so rank k runs up to in_flight batches ahead
// of rank k+1. Because a block's update depends only on its input and the labels, the result is
// the same for every placement and every in_flight.
#pragma once

#include <functional>
#include <vector>

#include "bll/data/loader.h"
#include "bll/learner.h"
#include "bll/models/model.h"
#include "bll/placement.h"
#include "bll/transport/transport.h"

namespace bll {

struct PhaseTiming {
  double seconds = 0;   // wall time of the phase on this rank
  double wait_s = 0;    // of which blocked on communication
  int64_t batches = 0;
};

struct PipelineOptions {
  int64_t in_flight = 2;                          // batches a rank may run ahead of the next
  torch::Device device = torch::kCPU;             // where this rank's tensors live
  torch::Dtype message_dtype = torch::kFloat32;   // alpha between spans (bf16 halves the bytes)
};

// Called on the feeding rank after each batch it has pushed: (batches done, batches total).
using ProgressFn = std::function<void(int64_t, int64_t)>;

class Pipeline {
 public:
  // `learners` are this rank's spans of blocks in order; `boundary_shapes[k]` is the per-sample input
  // shape of block k (from block_boundary_shapes); `label_shape` the per-sample shape of the labels
  // ({} for a class per sample, {T} for a class per token, an image for reconstruction) and type.
  Pipeline(Transport& transport, const Placement& placement, std::vector<BlockLearner>& learners,
           std::vector<Shape> boundary_shapes, Shape label_shape, torch::Dtype label_dtype, PipelineOptions options);

  // One training epoch over n_samples (full batches only). `source` is used on rank 0 only.
  PhaseTiming train(BatchSource* source, int64_t n_samples, int64_t batch_size, std::vector<BlockStats>& stats,
                    const ProgressFn& progress = {});

  // Inference over n_samples (every sample, the last batch may be partial).
  PhaseTiming eval(BatchSource* source, int64_t n_samples, int64_t batch_size, std::vector<BlockStats>& stats);

 private:
  using Step = std::function<torch::Tensor(BlockLearner&, const torch::Tensor&, const torch::Tensor&,
                                           std::vector<BlockStats>&)>;
  PhaseTiming stream(bool training, BatchSource* source, int64_t n_samples, int64_t batch_size,
                     std::vector<BlockStats>& stats, const Step& step, const ProgressFn& progress);

  Transport& transport_;
  const Placement& placement_;
  std::vector<BlockLearner>& learners_;
  std::vector<Shape> shapes_;
  Shape label_shape_;
  torch::Dtype label_dtype_;
  PipelineOptions opt_;
};

}  // namespace bll
