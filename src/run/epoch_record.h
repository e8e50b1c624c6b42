// An epoch's record as every rank agrees on it: the per-block statistics and per-rank timings
// of all ranks added up in one reduction. Internal to the trainer.
#pragma once

#include <vector>

#include "bll/learner.h"
#include "bll/metrics.h"
#include "bll/schedules/schedule.h"
#include "bll/transport/transport.h"

namespace bll {

// Adds up the per-block statistics and per-rank timings of all ranks (every rank gets the sum).
// `trained_samples`: training samples of the epoch; `recon`: the task reconstructs images
// (S15-S17 instead of accuracies); `divergence`: how far this rank's parameters were from
// replica 0's (the record keeps the largest). Over the world with runtime.replicas, so that each
// block's statistics add up over its replicas. Collective.
EpochRecord gather_epoch(Transport& t, int64_t epoch, const std::vector<BlockStats>& train,
                         const std::vector<BlockStats>& test, const PhaseTiming& tt, const PhaseTiming& et,
                         int64_t trained_samples, const BlockLearner& any_learner, bool recon,
                         double divergence = 0, int64_t replaced_files = 0);

}  // namespace bll
