// The training run of one rank, start to end. The same function runs every rank of a K-rank
// job and the single rank of a 1-process job; only the transport differs.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bll/config.h"
#include "bll/metrics.h"
#include "bll/transport/grid.h"
#include "bll/transport/transport.h"

namespace bll {

struct TrainResult {
  std::vector<EpochRecord> epochs;  // identical on every rank
  // This rank's blocks: parameters then buffers, in registration order, by block index.
  std::map<int64_t, std::vector<torch::Tensor>> block_state;
  std::vector<int64_t> blocks_per_rank;  // the placement the run used
};

struct TrainOptions {
  bool print = true;                    // rank 0 prints progress and epoch lines
  torch::Device device = torch::kCPU;   // where this rank's blocks and messages live (bll/device.h)
  std::function<void(int64_t)> before_step;  // tests: called before each span's step with the batch
};

// One pipeline on every rank of `transport` (runtime.replicas must be 1).
TrainResult run_training(const Config& config, Transport& transport, const TrainOptions& options = {});

// Stages x replicas (transport/grid.h): each replica trains on its share of every batch and
// the ranks of a stage agree through ReplicaSync; metrics count every replica once.
TrainResult run_training(const Config& config, const Grid& grid, const TrainOptions& options = {});

}  // namespace bll
