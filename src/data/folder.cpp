// Image folders: listing, the splits, and the batches a pool of threads decodes ahead.
#include "bll/data/folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "bll/data/images.h"
#include "bll/error.h"

namespace bll {
namespace fs = std::filesystem;
namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e.path());
  if (ec) throw DataError(dir.string() + ": cannot list folder (" + ec.message() + ")");
  std::sort(entries.begin(), entries.end());
  return entries;
}

// `count` of `n` indices, evenly spaced (all of them when count is 0 or at least n).
std::vector<int64_t> evenly(int64_t n, int64_t count) {
  if (count <= 0 || count >= n) count = n;
  std::vector<int64_t> idx(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) idx[size_t(i)] = i * n / count;
  return idx;
}

ImageFolder pick(const ImageFolder& f, const std::vector<int64_t>& idx) {
  ImageFolder out;
  out.classes = f.classes;
  for (int64_t i : idx) {
    out.files.push_back(f.files[size_t(i)]);
    out.labels.push_back(f.labels[size_t(i)]);
  }
  return out;
}

// The draws of one image: (seed, epoch, batch, row of the whole batch) alone.
std::mt19937_64 image_rng(uint64_t seed, int64_t epoch, int64_t t, int64_t row) {
  std::seed_seq seq{uint32_t(seed), uint32_t(seed >> 32), uint32_t(epoch), uint32_t(t), uint32_t(uint64_t(t) >> 32),
                    uint32_t(row), 0x51ed2705u};
  return std::mt19937_64(seq);
}

// One image as the transform makes it, written CHW into `out` (size * size * channels bytes).
void make_image(const std::string& file, const ImageTransform& tf, bool train, std::mt19937_64& rng, uint8_t* out) {
  const Image img = decode_image(file, tf.channels);
  Image done;
  if (train) {
    const Box box = random_resized_box(img.height, img.width, tf.scale_min, tf.scale_max, tf.ratio_min, tf.ratio_max, rng);
    done = resize(img, box, tf.size, tf.size);
    if (tf.hflip && (rng() & 1)) flip_horizontal(done);
  } else {
    done = resize_center_crop(img, tf.size);
  }
  const int64_t plane = tf.size * tf.size, c = tf.channels;
  for (int64_t p = 0; p < plane; ++p)
    for (int64_t ch = 0; ch < c; ++ch) out[ch * plane + p] = done.pixels[size_t(p * c + ch)];
}

}  // namespace

ImageFolder ImageFolder::part(int64_t begin, int64_t count) const {
  std::vector<int64_t> idx(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) idx[size_t(i)] = begin + i;
  return pick(*this, idx);
}

ImageFolder list_image_folder(const std::string& dir, const std::vector<std::string>* classes) {
  if (!fs::is_directory(dir))
    throw DataError(dir + ": no such folder (an image folder holds train/ and val/, each with one folder per class)");
  ImageFolder f;
  for (const auto& sub : sorted_entries(dir)) {
    if (!fs::is_directory(sub)) continue;
    const std::string name = sub.filename().string();
    int64_t label = int64_t(f.classes.size());
    if (classes) {
      const auto it = std::find(classes->begin(), classes->end(), name);
      if (it == classes->end()) throw DataError(sub.string() + ": class '" + name + "' is not a class of the training split");
      label = int64_t(it - classes->begin());
    }
    f.classes.push_back(name);
    int64_t images = 0;
    for (const auto& file : sorted_entries(sub))
      if (is_image_file(file) && fs::is_regular_file(file)) {
        f.files.push_back(file.string());
        f.labels.push_back(label);
        ++images;
      }
    if (images == 0) throw DataError(sub.string() + ": no JPEG or PNG images in this class folder");
  }
  if (f.classes.empty()) throw DataError(dir + ": no class folders (one sub-folder of images per class)");
  if (classes) f.classes = *classes;
  return f;
}

ImageFolders load_image_folders(const DataConfig& config) {
  ImageFolders s;
  s.train = list_image_folder((fs::path(config.dir) / "train").string());
  s.val = list_image_folder((fs::path(config.dir) / "val").string(), &s.train.classes);
  s.train = pick(s.train, evenly(s.train.size(), config.train_limit));
  s.val = pick(s.val, evenly(s.val.size(), config.test_limit));
  return s;
}

ImageTransform ImageTransform::of(const DataConfig& config) {
  ImageTransform tf;
  tf.size = config.image_size, tf.channels = config.channels, tf.hflip = config.hflip;
  tf.scale_min = config.scale_min, tf.scale_max = config.scale_max;
  tf.ratio_min = config.ratio_min, tf.ratio_max = config.ratio_max;
  return tf;
}

// ---- the source -------------------------------------------------------------------------------

struct FolderSource::Pending {
  int64_t t = 0, epoch = 0;
  torch::Tensor images, labels;  // uint8 [b, C, size, size], int64 [b]
  std::mutex mutex;
  std::condition_variable done;
  int64_t left = 0;
  std::string error;  // the first image that failed
};

FolderSource::FolderSource(ImageFolder folder, ImageTransform transform, Normalizer norm, int64_t batch_size,
                           bool train, uint64_t seed, int64_t workers)
    : BatchSource(folder.size(), batch_size, train, seed), folder_(std::move(folder)), transform_(transform),
      norm_(std::move(norm)) {
  for (int64_t i = 0; i < std::max<int64_t>(1, workers); ++i) threads_.emplace_back([this] { work(); });
}

FolderSource::~FolderSource() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    jobs_.clear();  // the images of a batch nobody will take
  }
  wake_.notify_all();
  for (auto& th : threads_) th.join();
}

void FolderSource::work() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

std::shared_ptr<FolderSource::Pending> FolderSource::start(int64_t t) {
  auto p = std::make_shared<Pending>();
  const std::vector<int64_t> rows = samples_of(t);
  const int64_t b = int64_t(rows.size()), first = first_row_of(t), bytes = transform_.channels * transform_.size * transform_.size;
  p->t = t, p->epoch = epoch_, p->left = b;
  p->images = torch::empty({b, transform_.channels, transform_.size, transform_.size}, torch::kUInt8);
  p->labels = torch::empty({b}, torch::kInt64);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int64_t i = 0; i < b; ++i) {
      p->labels.data_ptr<int64_t>()[i] = folder_.labels[size_t(rows[size_t(i)])];
      jobs_.push_back([p, file = folder_.files[size_t(rows[size_t(i)])], out = p->images.data_ptr<uint8_t>() + i * bytes,
                       tf = transform_, train = train_, seed = seed_, row = first + i] {
        std::string error;
        try {
          std::mt19937_64 rng = image_rng(seed, p->epoch, p->t, row);
          make_image(file, tf, train, rng, out);
        } catch (const std::exception& e) {
          error = e.what();
        }
        std::lock_guard<std::mutex> done(p->mutex);
        if (p->error.empty()) p->error = error;
        if (--p->left == 0) p->done.notify_all();
      });
    }
  }
  wake_.notify_all();
  return p;
}

std::shared_ptr<FolderSource::Pending> FolderSource::take(int64_t t) {
  std::shared_ptr<Pending> p = ahead_ && ahead_->t == t && ahead_->epoch == epoch_ ? ahead_ : start(t);
  ahead_ = t + 1 < num_batches() ? start(t + 1) : nullptr;  // queued behind batch t's images
  std::unique_lock<std::mutex> lock(p->mutex);
  p->done.wait(lock, [&] { return p->left == 0; });
  if (!p->error.empty()) throw DataError(p->error);
  return p;
}

void FolderSource::start_epoch(int64_t epoch) {
  BatchSource::start_epoch(epoch);
  ahead_ = nullptr;  // decoded for the old order
}

torch::Tensor FolderSource::images(int64_t t) { return take(t)->images; }

Batch FolderSource::get(int64_t t) {
  const auto p = take(t);
  return {norm_.apply(p->images), p->labels};
}

Normalizer fit_normalizer(const ImageFolder& train, const ImageTransform& transform, int64_t images, int64_t workers) {
  const ImageFolder sample = pick(train, evenly(train.size(), images));
  FolderSource source(sample, transform, Normalizer::identity(transform.channels), std::min<int64_t>(64, sample.size()),
                      false, 0, workers);
  source.start_epoch(0);
  std::vector<torch::Tensor> all;
  for (int64_t t = 0; t < source.num_batches(); ++t) all.push_back(source.images(t));
  return Normalizer::fit(torch::cat(all));
}

}  // namespace bll
