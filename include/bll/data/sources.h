// Opening a run's data: one entry per kind of data set (the built-in ones held in memory, image
// folders decoded on the fly), each giving the sources of batches and what every rank must know.
#pragma once

#include <memory>
#include <optional>

#include "bll/config.h"
#include "bll/data/loader.h"
#include "bll/models/model.h"

namespace bll {

// What every rank must know about the data; only the feeding ranks hold the data itself.
struct DataInfo {
  int64_t n_train = 0, n_test = 0, num_classes = 0;
  Shape sample_shape;  // {C, H, W}, or {T} for token sequences
  Shape label_shape;   // {} for a class per sample, {T} for a class per token, the image to reconstruct
  int64_t float_labels = 0;  // 1: targets are images (data.task autoencode), else class indices
};

// The samples [begin, begin + count) of n that replica r of R evaluates.
struct Share {
  int64_t begin, count;
};
inline Share share_of(int64_t n, int r, int R) {
  const int64_t begin = n * r / R;
  return {begin, n * (r + 1) / R - begin};
}

struct OpenData {
  DataInfo info;  // of the whole data set
  std::unique_ptr<BatchSource> train, test;
  // Image sets with data.normalize: the statistics used (fitted or given), which the run saves
  // (normalization.json) so that a resume and bll-eval use the same numbers.
  std::optional<Normalizer> image_norm;
};

// Opens data.dataset for replica `replica` of `replicas`: its share of every training batch of
// train.batch_size and its share of the test set, normalized with statistics of the training
// split (data.normalize), or for image sets with `saved` where given (a resumed run's, an
// exported network's). Throws DataError naming the file or folder.
OpenData open_data(const Config& config, int replica = 0, int replicas = 1, const Normalizer* saved = nullptr);

}  // namespace bll
