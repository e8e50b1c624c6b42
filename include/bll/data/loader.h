// Turns an in-memory Dataset into batches: seeded shuffling, augmentation and normalization.
// Only the rank that feeds the pipeline (rank 0) holds one.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <random>
#include <vector>

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

  // As saved with a run and its checkpoints (normalization.json): {"mean": [...], "std": [...]},
  // every float exact. from_json throws DataError naming `path` when the text is not that.
  std::string to_json() const;
  static Normalizer from_json(const std::string& text, const std::string& path);
  static Normalizer load(const std::string& path);  // from_json of the file; DataError naming it
};

// Per-channel sums of pixel values in [0, 1], in float64, added a batch [b, C, H, W] at a time;
// normalizer() gives their mean and unbiased standard deviation (as torch::std).
class ChannelMoments {
 public:
  explicit ChannelMoments(int64_t channels);
  void add(const torch::Tensor& x);
  Normalizer normalizer() const;

 private:
  torch::Tensor sum_, sq_;
  double n_ = 0;  // values per channel
};
inline constexpr const char* kNormalizationFile = "normalization.json";

// The normalization a run uses: statistics of the training images when data.normalize (images
// only), else x/255.
Normalizer normalizer_for(bool normalize, const Dataset& train);

struct Augment {
  bool hflip = false;
  int64_t crop_padding = 0;
};

// Batches of one split: the interface every data source gives the schedules, and the order of
// the samples. Training sources shuffle each epoch with a generator seeded by (seed, epoch), so
// the order depends only on those two numbers, and augment batch t with draws seeded by (seed,
// epoch, t); they drop the last partial batch so that every batch has the same shape. Any batch
// can be read first: a resumed run reads on where it stopped. Evaluation sources keep the order
// and the tail.
class BatchSource {
 public:
  BatchSource(int64_t samples, int64_t batch_size, bool train, uint64_t seed);
  virtual ~BatchSource() = default;

  // Training with runtime.replicas: batch t becomes share `index` of `count` equal shares of
  // the batch t the whole source would give (batch_size must be a multiple of count), so that
  // the replicas together see every batch once.
  void shard(int64_t index, int64_t count);

  int64_t num_batches() const;
  int64_t batch_size_of(int64_t t) const;  // samples in batch t (of this shard)
  virtual void start_epoch(int64_t epoch);  // re-shuffles (training) and re-seeds augmentation
  virtual Batch get(int64_t t) = 0;         // batch t of the current epoch, in order
  // Unreadable files replaced by the next readable one in the batches taken since the last
  // start_epoch (image sources with data.on_bad_file skip; 0 elsewhere).
  virtual int64_t replaced_files() const { return 0; }

 protected:
  // The samples of this shard's part of batch t, and the position of the first in the whole batch.
  std::vector<int64_t> samples_of(int64_t t) const;
  // Where in the epoch's order this shard's part of batch t begins.
  int64_t position_of(int64_t t) const { return t * batch_size_ + first_row_of(t); }
  int64_t first_row_of(int64_t t) const { return shard_ * batch_size_of(t); }
  // The generator of batch t's augmentation: seeded by (seed, epoch, t, salt) alone.
  std::mt19937_64 batch_rng(int64_t t, uint64_t salt) const;

  int64_t samples_, batch_size_;
  bool train_;
  uint64_t seed_;
  int64_t shard_ = 0, shards_ = 1, epoch_ = 0;
  std::vector<int64_t> order_;
};

// A data set held in memory (the built-in ones): augmentation by padded crops and flips.
class MemorySource : public BatchSource {
 public:
  MemorySource(Dataset data, Normalizer norm, int64_t batch_size, bool train, Augment aug, uint64_t seed);
  Batch get(int64_t t) override;

 private:
  torch::Tensor augment(torch::Tensor images_u8, std::mt19937_64& rng) const;

  Dataset data_;
  Normalizer norm_;
  Augment aug_;
};

// Number of batches and the size of batch t, for a split of n samples. Every rank computes the
// batch shapes it will receive from these, so no shape travels with the tensors.
int64_t num_batches(int64_t n, int64_t batch_size, bool drop_last);
int64_t batch_size_of(int64_t n, int64_t batch_size, int64_t t);

}  // namespace bll
