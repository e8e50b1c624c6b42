// The start of a run: world rank 0 claims the run directory, the feeding rank of every replica
// loads the data, and every rank learns what it needs of it. Internal to the trainer.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "bll/config.h"
#include "bll/data/loader.h"
#include "bll/data/sources.h"
#include "bll/models/model.h"
#include "bll/transport/grid.h"

namespace bll {

struct RankData {  // the feeding rank of each replica only
  std::unique_ptr<BatchSource> train, test;
  std::string normalization;  // normalization.json's text for image sets with data.normalize, else empty
};

// World rank 0 finds the checkpoint to resume from (checkpoint.resume; `resume_from` stays
// empty when there is none) and claims the run directory (a resumed run keeps its own); the
// feeding rank of every replica loads the data and makes its replica's sources (its share of
// every training batch, its share of the test set). Every rank learns the outcome, the
// directory and the checkpoint. A failure anywhere ends every rank with the same exit code
// before any training, reported once. Collective over the world.
DataInfo start_up(const Config& config, std::string& run_dir, std::string& resume_from, const Grid& grid,
                  RankData& data);

}  // namespace bll
