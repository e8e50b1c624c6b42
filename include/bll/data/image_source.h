// Batches of images read from a store (files in class folders, or packed shards) by a pool of
// threads: each image is decoded or copied, cropped, resized and flipped while the pipeline
// trains on the batch before.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
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
  virtual std::string name(int64_t i) const = 0;  // the file (and the place in it) image i comes from
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

  // The draws of one training image of height x width: its crop box, then its flip.
  struct Crop {
    Box box;
    bool flip = false;
  };
  Crop draw(int64_t height, int64_t width, ImageRng& rng) const;
};

// What made one image of a training batch (bll-data-bench --dump): for comparing the transform
// with another library's on the same crop boxes.
struct ImageRecord {
  std::string name;
  int64_t label = 0;
  ImageTransform::Crop crop;
};

struct Affine;  // a normalization as a scale and shift per channel (image_source.cpp)

// Batches of a store. A pool of `workers` threads prepares batch t + 1 while batch t trains, so
// memory holds two batches in the making or in use, and at most four batch tensors kept for
// reuse, whatever the store's size. Each image's crop and flip depend on (seed, epoch, t, its
// row in the whole batch) alone. A file that cannot be read
// stops the run with its name, or, with `skip_bad`, is replaced by the next readable image in the
// epoch's order (the same one on every resume and replica), named once on stderr and counted.
// With `pinned` (the device is a GPU) the batches are made in pinned host memory, which the
// copy to the device reads without staging.
class ImageSource : public BatchSource {
 public:
  ImageSource(std::shared_ptr<const ImageStore> store, ImageTransform transform, Normalizer norm, int64_t batch_size,
              bool train, uint64_t seed, int64_t workers, bool skip_bad = false, bool pinned = false);
  ~ImageSource() override;
  void start_epoch(int64_t epoch) override;
  Batch get(int64_t t) override;  // the workers normalize as they write
  int64_t replaced_files() const override { return replaced_; }
  // The images of training batch t and their crops (decodes them again: for inspection only).
  std::vector<ImageRecord> records(int64_t t) const;

 private:
  struct Pending;
  std::shared_ptr<Pending> start(int64_t t);
  std::shared_ptr<Pending> take(int64_t t);
  // A tensor for a batch of b images: a recycled one that nothing else holds any more (the
  // kernel need not hand out and zero fresh pages for every batch), or a new one.
  torch::Tensor buffer(int64_t b);
  void work();

  std::shared_ptr<const ImageStore> store_;
  ImageTransform transform_;
  std::shared_ptr<const Affine> norm_;  // the normalization as a scale and shift per channel
  std::shared_ptr<const std::vector<int64_t>> order_now_;  // the epoch's order, for the workers
  bool skip_bad_, pinned_;
  int64_t replaced_ = 0;
  std::set<std::string> named_;  // the bad files already named on stderr
  std::shared_ptr<Pending> ahead_;  // the batch being prepared ahead
  std::vector<torch::Tensor> pool_;  // batch tensors to recycle (at most 4)
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
