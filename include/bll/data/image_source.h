// Batches of images read from a store (files in class folders, or packed shards) by a pool of
// threads: each image is decoded or copied, cropped, resized and flipped while the pipeline
// trains on the batch before.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bll/config.h"
#include "bll/data/images.h"
#include "bll/data/loader.h"

namespace bll {

// Where the images are. image() is called from several threads at once.
class ImageStore {
 public:
  virtual ~ImageStore() = default;
  virtual int64_t size() const = 0;
  virtual int64_t label(int64_t i) const = 0;
  virtual Image image(int64_t i) const = 0;  // in the store's channels; throws DataError naming it
};

// The images `indices` of `store`, in that order.
std::shared_ptr<const ImageStore> subset(std::shared_ptr<const ImageStore> store, std::vector<int64_t> indices);

// `count` of `n` indices, evenly spaced (all of them when count is 0 or at least n), so that a
// subset keeps every class's share.
std::vector<int64_t> evenly(int64_t n, int64_t count);

// What becomes of each image: training takes a random resized crop (and a flip with data.hflip),
// evaluation the centre crop of the image resized to size / 0.875.
struct ImageTransform {
  int64_t size = 224, channels = 3;
  bool hflip = false;
  double scale_min = 0.08, scale_max = 1.0, ratio_min = 0.75, ratio_max = 4.0 / 3.0;
  static ImageTransform of(const DataConfig& config);
};

struct Affine;  // a normalization as a scale and shift per channel (image_source.cpp)

// Batches of a store. A pool of `workers` threads prepares batch t + 1 while batch t trains, so
// at most two batches of images are in memory whatever the store's size. Each image's crop and
// flip depend on (seed, epoch, t, its row in the whole batch) alone.
class ImageSource : public BatchSource {
 public:
  ImageSource(std::shared_ptr<const ImageStore> store, ImageTransform transform, Normalizer norm, int64_t batch_size,
              bool train, uint64_t seed, int64_t workers);
  ~ImageSource() override;
  void start_epoch(int64_t epoch) override;
  Batch get(int64_t t) override;  // the workers normalize as they write

 private:
  struct Pending;
  std::shared_ptr<Pending> start(int64_t t);
  std::shared_ptr<Pending> take(int64_t t);
  void work();

  std::shared_ptr<const ImageStore> store_;
  ImageTransform transform_;
  std::shared_ptr<const Affine> norm_;  // the normalization as a scale and shift per channel
  std::shared_ptr<Pending> ahead_;  // the batch being prepared ahead
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Per-channel statistics of up to `images` evaluation crops of `train` (evenly spaced).
Normalizer fit_normalizer(std::shared_ptr<const ImageStore> train, const ImageTransform& transform, int64_t images,
                          int64_t workers);

}  // namespace bll
