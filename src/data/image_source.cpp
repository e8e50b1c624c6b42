// Batches of images from a store, prepared ahead by a pool of threads.
#include "bll/data/image_source.h"

#include <algorithm>
#include <cstdio>

#include "bll/error.h"

namespace bll {
namespace {

// The images `indices` of another store.
class Subset : public ImageStore {
 public:
  Subset(std::shared_ptr<const ImageStore> store, std::vector<int64_t> indices)
      : store_(std::move(store)), indices_(std::move(indices)) {}
  int64_t size() const override { return int64_t(indices_.size()); }
  int64_t label(int64_t i) const override { return store_->label(indices_[size_t(i)]); }
  Image image(int64_t i) const override { return store_->image(indices_[size_t(i)]); }
  std::string name(int64_t i) const override { return store_->name(indices_[size_t(i)]); }

 private:
  std::shared_ptr<const ImageStore> store_;
  std::vector<int64_t> indices_;
};

// The draws of one image: (seed, epoch, batch, row of the whole batch) alone.
ImageRng image_rng(uint64_t seed, int64_t epoch, int64_t t, int64_t row) {
  return ImageRng{seed, uint64_t(epoch), uint64_t(t), uint64_t(row)};
}

}  // namespace

// Per channel, x = pixel * scale + shift is (pixel / 255 - mean) / std.
struct Affine {
  std::vector<float> scale, shift;
  explicit Affine(const Normalizer& n) {
    const auto mean = n.mean.to(torch::kFloat64).contiguous(), std = n.std.to(torch::kFloat64).contiguous();
    for (int64_t c = 0; c < mean.numel(); ++c) {
      const double m = mean.data_ptr<double>()[c], s = std.data_ptr<double>()[c];
      scale.push_back(float(1.0 / (255.0 * s)));
      shift.push_back(float(-m / s));
    }
  }
};

namespace {

// One image as the transform makes it, normalized and written CHW into `out`.
void make_image(const Image& img, const ImageTransform& tf, bool train, ImageRng& rng, const Affine& norm,
                float* out) {
  Planar planar{out, norm.scale.data(), norm.shift.data(), false};
  if (train) {
    const ImageTransform::Crop crop = tf.draw(img.height, img.width, rng);
    planar.flip = crop.flip;
    resize_planar(img, crop.box, tf.size, tf.size, planar);
  } else {
    write_planar(resize_center_crop(img, tf.size), planar);
  }
}

}  // namespace

std::shared_ptr<const ImageStore> subset(std::shared_ptr<const ImageStore> store, std::vector<int64_t> indices) {
  return std::make_shared<Subset>(std::move(store), std::move(indices));
}

std::vector<int64_t> evenly(int64_t n, int64_t count) {
  if (count <= 0 || count >= n) count = n;
  std::vector<int64_t> idx(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) idx[size_t(i)] = i * n / count;
  return idx;
}

ImageTransform ImageTransform::of(const DataConfig& config) {
  ImageTransform tf;
  tf.size = config.image_size, tf.channels = config.channels, tf.hflip = config.hflip;
  tf.scale_min = config.scale_min, tf.scale_max = config.scale_max;
  tf.ratio_min = config.ratio_min, tf.ratio_max = config.ratio_max;
  return tf;
}

ImageTransform::Crop ImageTransform::draw(int64_t height, int64_t width, ImageRng& rng) const {
  Crop crop;
  crop.box = random_resized_box(height, width, scale_min, scale_max, ratio_min, ratio_max, rng);
  crop.flip = hflip && (rng() & 1);
  return crop;
}

struct ImageSource::Pending {
  int64_t t = 0, epoch = 0;
  torch::Tensor x, labels;  // float [b, C, size, size], normalized; int64 [b]
  std::mutex mutex;
  std::condition_variable done;
  int64_t left = 0;
  std::string error;  // the first image that failed
  std::vector<std::string> replaced;  // why each replaced file could not be read
};

ImageSource::ImageSource(std::shared_ptr<const ImageStore> store, ImageTransform transform, Normalizer norm,
                         int64_t batch_size, bool train, uint64_t seed, int64_t workers, bool skip_bad, bool pinned)
    : BatchSource(store->size(), batch_size, train, seed), store_(std::move(store)), transform_(transform),
      norm_(std::make_shared<const Affine>(norm)), order_now_(std::make_shared<const std::vector<int64_t>>(order_)),
      skip_bad_(skip_bad), pinned_(pinned) {
  for (int64_t i = 0; i < std::max<int64_t>(1, workers); ++i) threads_.emplace_back([this] { work(); });
}

ImageSource::~ImageSource() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    jobs_.clear();  // the images of a batch nobody will take
  }
  wake_.notify_all();
  for (auto& th : threads_) th.join();
}

void ImageSource::work() {
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

std::shared_ptr<ImageSource::Pending> ImageSource::start(int64_t t) {
  auto p = std::make_shared<Pending>();
  const int64_t b = batch_size_of(t), first = first_row_of(t), at = position_of(t);
  const int64_t bytes = transform_.channels * transform_.size * transform_.size;
  p->t = t, p->epoch = epoch_, p->left = b;
  p->x = buffer(b);
  p->labels = torch::empty({b}, torch::kInt64);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int64_t i = 0; i < b; ++i) {
      jobs_.push_back([p, i, store = store_, order = order_now_, at = at + i, out = p->x.data_ptr<float>() + i * bytes,
                       tf = transform_, train = train_, seed = seed_, row = first + i, norm = norm_, skip = skip_bad_] {
        std::string error, replaced;
        try {
          // The image at `at` in the epoch's order, or with `skip` the next one that can be read.
          const int64_t n = int64_t(order->size());
          int64_t sample = (*order)[size_t(at)];
          Image img;
          for (int64_t k = 1;; ++k) {
            try {
              img = store->image(sample);
              break;
            } catch (const DataError& e) {
              if (!skip || k >= n) throw;
              if (replaced.empty()) replaced = e.what();
              sample = (*order)[size_t((at + k) % n)];
            }
          }
          p->labels.data_ptr<int64_t>()[i] = store->label(sample);
          ImageRng rng = image_rng(seed, p->epoch, p->t, row);
          make_image(img, tf, train, rng, *norm, out);
        } catch (const std::exception& e) {
          error = e.what();
        }
        std::lock_guard<std::mutex> done(p->mutex);
        if (p->error.empty()) p->error = error;
        if (!replaced.empty()) p->replaced.push_back(replaced);
        if (--p->left == 0) p->done.notify_all();
      });
    }
  }
  wake_.notify_all();
  return p;
}

torch::Tensor ImageSource::buffer(int64_t b) {
  const std::vector<int64_t> shape{b, transform_.channels, transform_.size, transform_.size};
  for (const torch::Tensor& x : pool_)  // held by the pool alone: no batch, view or graph uses it
    if (x.use_count() == 1 && x.storage().use_count() == 1 && x.sizes() == shape) return x;
  torch::Tensor x = torch::empty(shape, torch::TensorOptions(torch::kFloat32).pinned_memory(pinned_));
  if (pool_.size() < 4) pool_.push_back(x);
  return x;
}

std::shared_ptr<ImageSource::Pending> ImageSource::take(int64_t t) {
  std::shared_ptr<Pending> p = ahead_ && ahead_->t == t && ahead_->epoch == epoch_ ? ahead_ : start(t);
  ahead_ = t + 1 < num_batches() ? start(t + 1) : nullptr;  // queued behind batch t's images
  std::unique_lock<std::mutex> lock(p->mutex);
  p->done.wait(lock, [&] { return p->left == 0; });
  if (!p->error.empty()) throw DataError(p->error);
  for (const std::string& why : p->replaced) {
    ++replaced_;
    if (named_.insert(why).second)
      std::fprintf(stderr, "bll: warning: %s; data.on_bad_file skip: replaced by the next image of the epoch\n",
                   why.c_str());
  }
  return p;
}

void ImageSource::start_epoch(int64_t epoch) {
  BatchSource::start_epoch(epoch);
  order_now_ = std::make_shared<const std::vector<int64_t>>(order_);  // a batch of the old order keeps its own
  ahead_ = nullptr;  // decoded for the old order
  replaced_ = 0;
}

Batch ImageSource::get(int64_t t) {
  const auto p = take(t);
  return {p->x, p->labels};
}

std::vector<ImageRecord> ImageSource::records(int64_t t) const {
  const std::vector<int64_t> rows = samples_of(t);
  std::vector<ImageRecord> out;
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t sample = rows[i];
    const Image img = store_->image(sample);
    ImageRng rng = image_rng(seed_, epoch_, t, first_row_of(t) + int64_t(i));
    out.push_back({store_->name(sample), store_->label(sample), transform_.draw(img.height, img.width, rng)});
  }
  return out;
}

Normalizer fit_normalizer(std::shared_ptr<const ImageStore> train, const ImageTransform& transform, int64_t images,
                          int64_t workers) {
  const auto sample = subset(train, evenly(train->size(), images));
  ImageSource source(sample, transform, Normalizer::identity(transform.channels), std::min<int64_t>(64, sample->size()),
                     false, 0, workers);
  source.start_epoch(0);
  ChannelMoments moments(transform.channels);  // of x / 255, as Normalizer::fit of a uint8 set
  for (int64_t t = 0; t < source.num_batches(); ++t) moments.add(source.get(t).x);
  return moments.normalizer();
}

}  // namespace bll
