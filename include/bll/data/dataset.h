// A labelled image data set held in memory, and how to load one from a data folder.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "bll/config.h"

namespace bll {

struct Dataset {
  torch::Tensor images;  // uint8 [N, C, H, W], or token ids [N, T] for a sequence task
  torch::Tensor labels;  // int64 [N], in [0, num_classes); [N, T] for a sequence task
  int64_t size() const { return labels.size(0); }
  bool reconstruct = false;  // autoencode: the target is the input itself (labels are unused)
  bool sequences() const { return images.dim() == 2; }
};

struct DataSplit {
  Dataset train, test;
  int64_t num_classes = 10;
  std::string name;
};

// Loads data.dataset from data.dir (IDX files for mnist/fashion-mnist, binary batches for
// cifar10), applies data.train_limit/test_limit, and checks that images and labels agree; or
// generates the sequence task (reversal) from `seed`. Throws DataError naming the file and the problem.
DataSplit load_dataset(const DataConfig& config, uint64_t seed = 0);

// What a built-in data set holds, known from its configuration alone, so that a model that cannot
// take it is refused before any file is read.
struct DataShape {
  std::vector<int64_t> sample;  // {C, H, W}, or {T} for token sequences
  int64_t num_classes = 0;      // with data.task autoencode: the size of the image to reconstruct
};
// The shape data.dataset will have (data.task applied); nullopt where only the files can tell.
std::optional<DataShape> known_shape(const DataConfig& config);

// Path of a data file in `dir`: `name.gz` or `name`, whichever exists; throws DataError naming
// both when neither does.
std::string find_data_file(const std::string& dir, const std::string& name);

}  // namespace bll
