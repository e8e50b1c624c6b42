// The start of a run: world rank 0 claims the run directory, the feeding rank of every replica
// loads the data, and every rank learns what it needs of it. Internal to the trainer.
#pragma once

#include <optional>
#include <string>

#include "bll/config.h"
#include "bll/data/loader.h"
#include "bll/models/model.h"
#include "bll/transport/grid.h"

namespace bll {

// What every rank must know about the data; only the feeding ranks hold the data itself.
struct DataInfo {
  int64_t n_train = 0, n_test = 0, num_classes = 0;
  Shape sample_shape;  // {C, H, W}, or {T} for token sequences
  Shape label_shape;   // {} for a class per sample, {T} for a class per token, the image to reconstruct
  int64_t float_labels = 0;  // 1: targets are images (data.task autoencode), else class indices
};

struct RankData {  // the feeding rank of each replica only
  std::optional<BatchSource> train, test;
};

// The samples [begin, begin + count) of n that replica r of R evaluates.
struct Share {
  int64_t begin, count;
};
inline Share share_of(int64_t n, int r, int R) {
  const int64_t begin = n * r / R;
  return {begin, n * (r + 1) / R - begin};
}

// World rank 0 finds the checkpoint to resume from (checkpoint.resume; `resume_from` stays
// empty when there is none) and claims the run directory (a resumed run keeps its own); the
// feeding rank of every replica loads the data and makes its replica's sources (its share of
// every training batch, its share of the test set). Every rank learns the outcome, the
// directory and the checkpoint. A failure anywhere ends every rank with the same exit code
// before any training, reported once. Collective over the world.
DataInfo start_up(const Config& config, std::string& run_dir, std::string& resume_from, const Grid& grid,
                  RankData& data);

}  // namespace bll
