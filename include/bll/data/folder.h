// Image folders (data.dataset: folder): DIR/train/<class>/* and DIR/val/<class>/*, JPEG or PNG,
// decoded and transformed while the pipeline trains, by a pool of data.workers threads.
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
#include "bll/data/loader.h"

namespace bll {

// One split's files and labels; a label indexes `classes` (the class folders' names, sorted).
struct ImageFolder {
  std::vector<std::string> classes;
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  int64_t size() const { return int64_t(files.size()); }
  ImageFolder part(int64_t begin, int64_t count) const;  // files [begin, begin + count)
};

// Lists a split's folder: every sub-folder is a class, every .jpg, .jpeg or .png file in it (any
// case) a sample, in name order. With `classes` (the training split's), the split must use those
// only. Throws DataError naming the path: no such folder, a class folder without images, a class
// the training split does not have.
ImageFolder list_image_folder(const std::string& dir, const std::vector<std::string>* classes = nullptr);

// The training and validation splits of data.dir, data.train_limit and data.test_limit applied
// (evenly spaced samples, so every class keeps its share).
struct ImageFolders {
  ImageFolder train, val;
};
ImageFolders load_image_folders(const DataConfig& config);

// What becomes of each image: training takes a random resized crop (and a flip with data.hflip),
// evaluation the centre crop of the image resized to size / 0.875.
struct ImageTransform {
  int64_t size = 224, channels = 3;
  bool hflip = false;
  double scale_min = 0.08, scale_max = 1.0, ratio_min = 0.75, ratio_max = 4.0 / 3.0;
  static ImageTransform of(const DataConfig& config);
};

// Batches of an image folder. A pool of `workers` threads decodes batch t + 1 while batch t
// trains, so at most two batches of images are in memory whatever the folder's size. Each
// image's crop and flip depend on (seed, epoch, t, its row in the whole batch) alone.
class FolderSource : public BatchSource {
 public:
  FolderSource(ImageFolder folder, ImageTransform transform, Normalizer norm, int64_t batch_size, bool train,
               uint64_t seed, int64_t workers);
  ~FolderSource() override;
  void start_epoch(int64_t epoch) override;
  Batch get(int64_t t) override;
  torch::Tensor images(int64_t t);  // batch t as uint8 [b, C, size, size], before normalization

 private:
  struct Pending;
  std::shared_ptr<Pending> start(int64_t t);
  std::shared_ptr<Pending> take(int64_t t);
  void work();

  ImageFolder folder_;
  ImageTransform transform_;
  Normalizer norm_;
  std::shared_ptr<Pending> ahead_;  // the batch being decoded ahead
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Per-channel statistics of up to `images` evaluation crops of the training split (evenly spaced).
Normalizer fit_normalizer(const ImageFolder& train, const ImageTransform& transform, int64_t images, int64_t workers);

}  // namespace bll
