// Turns an in-memory Dataset into batches: seeded shuffling, augmentation and normalization.
// Only the rank that feeds the pipeline (rank 0) holds one.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <random>

#include "bll/data/dataset.h"

namespace bll {

struct Batch {
  torch::Tensor x;  // float [b, C, H, W], normalized; token ids as float [b, T] for sequences
  torch::Tensor y;  // int64 [b], or [b, T] for sequences; float [b, 1, 56, 28] to reconstruct
};

// Per-channel standardization; statistics come from the training set.
struct Normalizer {
  torch::Tensor mean, std;  // float [C]
  static Normalizer fit(const torch::Tensor& images_u8);
  static Normalizer identity(int64_t channels);  // x/255 only
  torch::Tensor apply(const torch::Tensor& images_u8) const;  // -> float, (x/255 - mean)/std
};

// The normalization a run uses: statistics of the training images when data.normalize (images
// only), else x/255.
Normalizer normalizer_for(bool normalize, const Dataset& train);

struct Augment {
  bool hflip = false;
  int64_t crop_padding = 0;
};

// Batches of one split. Training sources shuffle each epoch with a generator seeded by
// (seed, epoch), so the order depends only on those two numbers, and augment batch t with one
// seeded by (seed, epoch, t); they drop the last partial batch so that every batch has the
// same shape. Any batch can be read first: a resumed run reads on where it stopped. Evaluation sources keep the order and the tail.
class BatchSource {
 public:
  BatchSource(Dataset data, Normalizer norm, int64_t batch_size, bool train, Augment aug, uint64_t seed);

  // Training with runtime.replicas: batch t becomes share `index` of `count` equal shares of
  // the batch t the whole source would give (batch_size must be a multiple of count), so that
  // the replicas together see every batch once.
  void shard(int64_t index, int64_t count);

  int64_t num_batches() const;
  int64_t batch_size_of(int64_t t) const;  // samples in batch t (of this shard)
  void start_epoch(int64_t epoch);          // re-shuffles (training) and re-seeds augmentation
  Batch get(int64_t t);                     // batch t of the current epoch, in order

 private:
  torch::Tensor augment(torch::Tensor images_u8);

  Dataset data_;
  Normalizer norm_;
  int64_t batch_size_;
  bool train_;
  Augment aug_;
  uint64_t seed_;
  int64_t shard_ = 0, shards_ = 1, epoch_ = 0;
  std::vector<int64_t> order_;
  std::mt19937_64 rng_;
};

// Number of batches and the size of batch t, for a split of n samples. Every rank computes the
// batch shapes it will receive from these, so no shape travels with the tensors.
int64_t num_batches(int64_t n, int64_t batch_size, bool drop_last);
int64_t batch_size_of(int64_t n, int64_t batch_size, int64_t t);

}  // namespace bll
