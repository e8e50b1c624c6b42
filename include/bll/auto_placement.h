// runtime.blocks_per_rank: auto -- placement by measured cost.
#pragma once

#include <torch/torch.h>

#include <functional>

#include "bll/config.h"
#include "bll/data/loader.h"
#include "bll/models/model.h"
#include "bll/models/twin.h"
#include "bll/placement.h"
#include "bll/transport/transport.h"

namespace bll {

// The pipeline's seconds per training batch under `placement`, measured with every rank taking
// part; the same value on every rank. Collective.
using PlacementTrial = std::function<double(const Placement&)>;

// Rank 0 times each span's training step on a training batch (one warm-up step, then the least
// of three; the first span's cost includes loading a batch, which rank 0 does) with throw-away
// blocks built exactly as the real ones. Every contiguous plan whose predicted slowest rank is
// within 15% of the best (at most 4, best first) is then timed by `trial` in the real pipeline
// (two interleaved rounds, the faster of each plan's two),
// and the fastest is kept; without `trial`, or with one such plan, the best prediction
// (balance()). Every rank gets the plan; rank 0 prints the costs, the trials and the plan when
// `print`. Collective; `train` is used on rank 0 only. The run's result does not depend on it:
// placement never changes it.
Placement place_by_cost(const Config& config, Transport& t, const Shape& sample_shape, int64_t num_classes,
                        BatchSource* train, const TwinCodes* twin, torch::Device device, bool print,
                        const PlacementTrial& trial = {});

}  // namespace bll
