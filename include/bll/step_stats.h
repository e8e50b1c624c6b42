// The statistics of a phase's steps where they are computed: per-block sums in one device
// tensor, read back at runtime.log_every steps and at the end of the phase in one transfer
// (bll/host_reads.h). The steps add to it without waiting for the device; the host-side counts
// (batches, samples, seconds) stay in BlockStats, which the flush completes.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace bll {

struct BlockStats;

class StepStats {
 public:
  // The fields summed on the device, per block.
  enum Field : int64_t { kLoss, kKl, kPred, kCorrect1, kCorrect3, kSeqCorrect, kS15, kS16, kS17, kFields };

  // Rows for blocks 0 .. blocks - 1 (a rank uses the rows of its own blocks).
  StepStats(int64_t blocks, torch::Device device);

  // Adds one-element tensors (any dtype, on the device) to `block`'s fields first, first + 1, ...
  // Adding kLoss counts a step of the block for the divergence report.
  void add(int64_t block, Field first, const std::vector<torch::Tensor>& values);

  // One read of every row: adds the sums since the last flush into `stats` and zeroes them.
  // Throws RuntimeError, naming the block and the batches since the last flush, when a block's
  // loss is not finite (training diverged). Does nothing when nothing was added.
  void flush(std::vector<BlockStats>& stats);

 private:
  torch::Tensor sums_;                // [blocks, kFields] float64 on the device
  std::vector<int64_t> steps_since_;  // per block: losses added since the last flush
  bool pending_ = false;
};

}  // namespace bll
