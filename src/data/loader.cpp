#include "bll/data/loader.h"

#include <fstream>
#include <iterator>
#include <numeric>

#include <nlohmann/json.hpp>

#include "bll/error.h"

namespace bll {

int64_t num_batches(int64_t n, int64_t batch_size, bool drop_last) {
  return drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
}

int64_t batch_size_of(int64_t n, int64_t batch_size, int64_t t) {
  return std::min(batch_size, n - t * batch_size);
}

ChannelMoments::ChannelMoments(int64_t channels)
    : sum_(torch::zeros({channels}, torch::kFloat64)), sq_(torch::zeros({channels}, torch::kFloat64)) {}

void ChannelMoments::add(const torch::Tensor& x) {
  const auto d = x.to(torch::kFloat64);
  sum_ += d.sum({0, 2, 3});
  sq_ += d.pow(2).sum({0, 2, 3});
  n_ += double(d.numel() / d.size(1));
}

Normalizer ChannelMoments::normalizer() const {
  auto mean = sum_ / n_;
  auto var = (sq_ - n_ * mean.pow(2)) / std::max(1.0, n_ - 1);  // unbiased, as torch::std
  return {mean.to(torch::kFloat32), var.clamp_min(1e-12).sqrt().to(torch::kFloat32)};
}

Normalizer Normalizer::fit(const torch::Tensor& images_u8) {
  // A chunk at a time: the whole set in float64 would be 8x its size.
  const int64_t chunk = 4096;
  ChannelMoments moments(images_u8.size(1));
  for (int64_t i = 0; i < images_u8.size(0); i += chunk)
    moments.add(images_u8.narrow(0, i, std::min(chunk, images_u8.size(0) - i)).to(torch::kFloat64).div_(255.0));
  return moments.normalizer();
}

Normalizer normalizer_for(bool normalize, const Dataset& train) {
  const bool images = !train.sequences() && !train.reconstruct;
  if (images && normalize) return Normalizer::fit(train.images);
  return Normalizer::identity(images ? train.images.size(1) : 1);
}

std::string Normalizer::to_json() const {
  const auto values = [](const torch::Tensor& t) {
    const auto f = t.to(torch::kFloat32).contiguous();
    return std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  };
  return nlohmann::json{{"mean", values(mean)}, {"std", values(std)}}.dump() + "\n";
}

Normalizer Normalizer::from_json(const std::string& text, const std::string& path) {
  try {
    const auto j = nlohmann::json::parse(text);
    const auto mean = j.at("mean").get<std::vector<float>>(), std = j.at("std").get<std::vector<float>>();
    if (mean.empty() || mean.size() != std.size() || mean.size() > 3)
      throw DataError(path + ": 'mean' and 'std' must hold one number per channel (1 to 3)");
    for (float s : std)
      if (!(s > 0)) throw DataError(path + ": a standard deviation is not positive");
    return {torch::tensor(mean), torch::tensor(std)};
  } catch (const nlohmann::json::exception& e) {
    throw DataError(path + ": not a normalization file (" + e.what() + ")");
  }
}

Normalizer Normalizer::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open normalization file");
  return from_json(std::string(std::istreambuf_iterator<char>(in), {}), path);
}

Normalizer Normalizer::identity(int64_t channels) {
  return {torch::zeros({channels}), torch::ones({channels})};
}

torch::Tensor Normalizer::apply(const torch::Tensor& images_u8) const {
  auto x = images_u8.to(torch::kFloat32).div_(255.0f);
  return x.sub_(mean.view({1, -1, 1, 1})).div_(std.view({1, -1, 1, 1}));
}

BatchSource::BatchSource(int64_t samples, int64_t batch_size, bool train, uint64_t seed)
    : samples_(samples), batch_size_(batch_size), train_(train), seed_(seed) {
  order_.resize(size_t(samples_));
  std::iota(order_.begin(), order_.end(), 0);
}

int64_t BatchSource::num_batches() const { return bll::num_batches(samples_, batch_size_, train_); }

int64_t BatchSource::batch_size_of(int64_t t) const {
  return bll::batch_size_of(samples_, batch_size_, t) / shards_;
}

void BatchSource::shard(int64_t index, int64_t count) {
  if (!train_ || count < 1 || index < 0 || index >= count || batch_size_ % count != 0)
    throw RuntimeError("data: share " + std::to_string(index) + " of " + std::to_string(count) +
                       " of a batch of " + std::to_string(batch_size_) + " (training sources, equal shares only)");
  shard_ = index, shards_ = count;
}

void BatchSource::start_epoch(int64_t epoch) {
  epoch_ = epoch;
  std::mt19937_64 rng(seed_ * 1000003ull + uint64_t(epoch) * 7919ull + (train_ ? 1 : 2));
  std::iota(order_.begin(), order_.end(), 0);
  if (!train_) return;
  // Fisher-Yates with our own draws: the same permutation on every platform and library.
  for (size_t i = order_.size(); i > 1; --i) {
    const size_t j = size_t(rng() % i);
    std::swap(order_[i - 1], order_[j]);
  }
}

std::vector<int64_t> BatchSource::samples_of(int64_t t) const {
  const int64_t b = batch_size_of(t), from = position_of(t);
  return std::vector<int64_t>(order_.begin() + from, order_.begin() + from + b);
}

std::mt19937_64 BatchSource::batch_rng(int64_t t, uint64_t salt) const {
  // Batch t's draws depend on (seed, epoch, t) alone, so a run resumed at any batch (or a
  // source that read ahead) augments exactly as an uninterrupted one.
  const uint64_t e = uint64_t(epoch_), b = uint64_t(t);
  std::seed_seq seq{uint32_t(seed_), uint32_t(seed_ >> 32), uint32_t(e), uint32_t(b), uint32_t(b >> 32), uint32_t(salt)};
  return std::mt19937_64(seq);
}

MemorySource::MemorySource(Dataset data, Normalizer norm, int64_t batch_size, bool train, Augment aug, uint64_t seed)
    : BatchSource(data.size(), batch_size, train, seed), data_(std::move(data)), norm_(std::move(norm)), aug_(aug) {}

torch::Tensor MemorySource::augment(torch::Tensor img, std::mt19937_64& rng) const {
  if (aug_.crop_padding > 0) {
    const int64_t p = aug_.crop_padding, h = img.size(2), w = img.size(3);
    auto padded = torch::constant_pad_nd(img, {p, p, p, p}, 0);
    auto out = torch::empty_like(img);
    for (int64_t i = 0; i < img.size(0); ++i) {
      const int64_t dy = int64_t(rng() % uint64_t(2 * p + 1)), dx = int64_t(rng() % uint64_t(2 * p + 1));
      out[i].copy_(padded[i].narrow(1, dy, h).narrow(2, dx, w));
    }
    img = out;
  }
  if (aug_.hflip) {
    std::vector<int64_t> flip;
    for (int64_t i = 0; i < img.size(0); ++i)
      if (rng() & 1) flip.push_back(i);
    if (!flip.empty()) {
      auto idx = torch::tensor(flip, torch::kInt64);
      img = img.clone();
      img.index_copy_(0, idx, img.index_select(0, idx).flip({3}));
    }
  }
  return img;
}

Batch MemorySource::get(int64_t t) {
  std::vector<int64_t> rows = samples_of(t);
  auto idx = torch::from_blob(rows.data(), {int64_t(rows.size())}, torch::kInt64).clone();
  auto img = data_.images.index_select(0, idx);
  if (data_.sequences()) return {img.to(torch::kFloat32), data_.labels.index_select(0, idx)};  // token ids
  if (data_.reconstruct) {  // the target is the input: values in [0, 1], no augmentation
    auto x = img.to(torch::kFloat32).div_(255.0f);
    return {x, x.clone()};
  }
  if (train_ && (aug_.crop_padding > 0 || aug_.hflip)) {
    std::mt19937_64 rng = batch_rng(t, 0x3bcc908bu);
    img = augment(img, rng);
  }
  return {norm_.apply(img), data_.labels.index_select(0, idx)};
}

}  // namespace bll
