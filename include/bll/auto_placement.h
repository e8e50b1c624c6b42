// runtime.blocks_per_rank: auto -- placement by measured cost.
#pragma once

#include <torch/torch.h>

#include "bll/config.h"
#include "bll/data/loader.h"
#include "bll/models/model.h"
#include "bll/models/twin.h"
#include "bll/placement.h"
#include "bll/transport/transport.h"

namespace bll {

// Rank 0 times each span's training step on a training batch (one warm-up step, then the least
// of three; the first span's cost includes loading a batch, which rank 0 does) with throw-away blocks built exactly as the real ones, and places
// contiguous spans so that the slowest rank is as fast as it can be (balance()). Every rank gets
// the plan; rank 0 prints it and the predicted per-rank load when `print`. Collective; `train`
// is used on rank 0 only. The run's result does not depend on it: placement never changes it.
Placement place_by_cost(const Config& config, Transport& t, const Shape& sample_shape, int64_t num_classes,
                        BatchSource* train, const TwinCodes* twin, torch::Device device, bool print);

}  // namespace bll
