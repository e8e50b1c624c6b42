#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "bll/data/cifar.h"
#include "bll/data/dataset.h"
#include "bll/data/idx.h"
#include "bll/data/loader.h"
#include "bll/data/sequences.h"
#include "bll/error.h"
#include "fixtures.h"

using namespace bll;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {
std::string data_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    CHECK(e.code() == kExitData);
    return e.what();
  }
  FAIL("no DataError");
  return "";
}

void truncate_file(const std::string& path, size_t keep) {
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(std::min(keep, bytes.size())));
}

DataConfig idx_config(const std::string& dir) {
  DataConfig c;
  c.dataset = "fashion-mnist", c.dir = dir;
  return c;
}
}  // namespace

TEST_CASE("IDX files round-trip, gzipped and raw") {
  const auto dir = test::temp_dir("idx-roundtrip");
  torch::Tensor img, lab;
  test::make_images(37, 3, img, lab);
  for (const std::string ext : {"", ".gz"}) {
    write_idx_images(dir + "/i" + ext, img);
    write_idx_labels(dir + "/l" + ext, lab);
    auto back = read_idx_images(dir + "/i" + ext);
    CHECK(back.sizes() == torch::IntArrayRef({37, 1, 28, 28}));
    CHECK(torch::equal(back.squeeze(1), img));
    CHECK(torch::equal(read_idx_labels(dir + "/l" + ext), lab));
  }
}

TEST_CASE("IDX headers found by fuzz_idx: no items read as empty tensors, dimensions past 64 bits are named") {
  const auto dir = test::temp_dir("idx-empty");
  // 98 images of 0 x 1 pixels, then 0 images of 28 x 28, and 0 labels: headers only.
  write_file_maybe_gz(dir + "/rows", std::string("\0\0\x08\x03\0\0\0\x62\0\0\0\0\0\0\0\x01", 16));
  write_file_maybe_gz(dir + "/images", std::string("\0\0\x08\x03\0\0\0\0\0\0\0\x1c\0\0\0\x1c", 16));
  write_file_maybe_gz(dir + "/labels", std::string("\0\0\x08\x01\0\0\0\0", 8));
  CHECK(read_idx_images(dir + "/rows").sizes() == torch::IntArrayRef({98, 1, 0, 1}));
  CHECK(read_idx_images(dir + "/images").numel() == 0);
  CHECK(read_idx_labels(dir + "/labels").numel() == 0);
  // Dimensions whose product passes 2^64 (and once wrapped to the file's size) are named.
  write_file_maybe_gz(dir + "/huge", std::string("\0\0\x08\x03\x10\x58\0\0\x2f\0\0\0\x01\0\0\0", 16) +
                                         std::string(16, '\0'));
  CHECK_THAT(data_error([&] { read_idx_images(dir + "/huge"); }), Contains("more than 2^64 data bytes"));
}

TEST_CASE("a bad magic number is named") {
  const auto dir = test::temp_dir("idx-magic");
  write_idx_labels(dir + "/labels", torch::zeros({4}, torch::kInt64));
  const auto msg = data_error([&] { read_idx_images(dir + "/labels"); });
  CHECK_THAT(msg, Contains(dir + "/labels") && Contains("bad magic number 0x00000801") && Contains("0x00000803"));
}

TEST_CASE("a truncated raw IDX file is named with the missing size") {
  const auto dir = test::temp_dir("idx-trunc");
  torch::Tensor img, lab;
  test::make_images(10, 3, img, lab);
  write_idx_images(dir + "/img", img);
  truncate_file(dir + "/img", 16 + 784 * 5);
  CHECK_THAT(data_error([&] { read_idx_images(dir + "/img"); }),
             Contains(dir + "/img") && Contains("truncated") && Contains("7840"));
  truncate_file(dir + "/img", 10);
  CHECK_THAT(data_error([&] { read_idx_images(dir + "/img"); }), Contains("truncated IDX header"));
}

TEST_CASE("a truncated gzip stream is named") {
  const auto dir = test::temp_dir("idx-gz");
  torch::Tensor img, lab;
  test::make_images(50, 3, img, lab);
  write_idx_images(dir + "/img.gz", img);
  truncate_file(dir + "/img.gz", size_t(fs::file_size(dir + "/img.gz") / 2));
  CHECK_THAT(data_error([&] { read_idx_images(dir + "/img.gz"); }), Contains(dir + "/img.gz"));
}

TEST_CASE("a missing file names the folder and the file") {
  const auto dir = test::temp_dir("missing");
  CHECK_THAT(data_error([&] { load_dataset(idx_config(dir)); }),
             Contains(dir) && Contains("train-images-idx3-ubyte") && Contains("get_data.sh"));
  CHECK_THAT(data_error([&] { load_dataset(idx_config(dir + "/nope")); }), Contains("is not a folder"));
}

TEST_CASE("images and labels that disagree in count are named") {
  const auto dir = test::temp_dir("mismatch");
  test::write_idx_dataset(dir, 40, 20, 1);
  write_idx_labels(dir + "/train-labels-idx1-ubyte.gz", torch::zeros({39}, torch::kInt64));
  CHECK_THAT(data_error([&] { load_dataset(idx_config(dir)); }),
             Contains("40 images") && Contains("39 labels") && Contains("train-labels-idx1-ubyte.gz"));
}

TEST_CASE("labels out of range are rejected") {
  const auto dir = test::temp_dir("labels");
  test::write_idx_dataset(dir, 20, 20, 1);
  write_idx_labels(dir + "/t10k-labels-idx1-ubyte.gz", torch::full({20}, 12, torch::kInt64));
  CHECK_THAT(data_error([&] { load_dataset(idx_config(dir)); }), Contains("label 12 is out of range"));
}

TEST_CASE("load_dataset reads a split and applies limits") {
  const auto dir = test::temp_dir("load");
  test::write_idx_dataset(dir, 100, 30, 1);
  auto c = idx_config(dir);
  c.train_limit = 64;
  const auto s = load_dataset(c);
  CHECK(s.train.size() == 64);
  CHECK(s.test.size() == 30);
  CHECK(s.num_classes == 10);
  CHECK(s.train.images.sizes() == torch::IntArrayRef({64, 1, 28, 28}));
}

TEST_CASE("CIFAR-10 binary files round-trip, and truncation and bad labels are named") {
  const auto dir = test::temp_dir("cifar");
  auto img = torch::randint(0, 256, {6, 3, 32, 32}, torch::kInt64).to(torch::kUInt8);
  auto lab = torch::tensor({0, 9, 3, 3, 5, 1}, torch::kInt64);
  for (int i = 1; i <= 5; ++i) write_cifar10(dir + "/data_batch_" + std::to_string(i) + ".bin", img, lab);
  write_cifar10(dir + "/test_batch.bin", img.narrow(0, 0, 2), lab.narrow(0, 0, 2));
  DataConfig c;
  c.dataset = "cifar10", c.dir = dir;
  const auto s = load_dataset(c);
  CHECK(s.train.size() == 30);
  CHECK(s.test.size() == 2);
  CHECK(torch::equal(s.train.images.narrow(0, 6, 6), img));
  CHECK(torch::equal(s.train.labels.narrow(0, 0, 6), lab));

  truncate_file(dir + "/data_batch_3.bin", 3073 * 2 + 100);
  CHECK_THAT(data_error([&] { load_dataset(c); }),
             Contains("data_batch_3.bin") && Contains("not a whole number of CIFAR-10 records"));
  std::ofstream(dir + "/data_batch_3.bin", std::ios::binary | std::ios::trunc) << std::string(3073, '\x0c');
  CHECK_THAT(data_error([&] { load_dataset(c); }), Contains("data_batch_3.bin") && Contains("label 12"));
}

TEST_CASE("training batches: seeded shuffle, full batches, every sample once per epoch") {
  torch::Tensor img, lab;
  test::make_images(103, 5, img, lab);
  Dataset d{img.unsqueeze(1), lab};
  auto norm = Normalizer::identity(1);
  MemorySource a(d, norm, 10, true, {}, 42), b(d, norm, 10, true, {}, 42), c(d, norm, 10, true, {}, 43);
  CHECK(a.num_batches() == 10);  // the partial batch is dropped
  auto order = [](BatchSource& s, int64_t epoch) {
    s.start_epoch(epoch);
    std::vector<torch::Tensor> ys;
    for (int64_t t = 0; t < s.num_batches(); ++t) ys.push_back(s.get(t).y);
    return torch::cat(ys);
  };
  const auto a0 = order(a, 0);
  CHECK(torch::equal(a0, order(b, 0)));
  CHECK_FALSE(torch::equal(a0, order(c, 0)));
  CHECK_FALSE(torch::equal(a0, order(a, 1)));
  CHECK(torch::equal(a0, order(a, 0)));  // an epoch's order depends only on (seed, epoch)
  // No sample repeats within an epoch: compare the image rows drawn.
  a.start_epoch(0);
  std::vector<torch::Tensor> xs;
  for (int64_t t = 0; t < a.num_batches(); ++t) xs.push_back(a.get(t).x);
  auto rows = torch::cat(xs).flatten(1);
  CHECK(std::get<0>(torch::_unique(rows.sum(1) * 1000 + rows.select(1, 100))).numel() == 100);
}

TEST_CASE("evaluation batches keep the order and the tail") {
  torch::Tensor img, lab;
  test::make_images(25, 5, img, lab);
  MemorySource s(Dataset{img.unsqueeze(1), lab}, Normalizer::identity(1), 10, false, {}, 1);
  s.start_epoch(0);
  CHECK(s.num_batches() == 3);
  CHECK(s.batch_size_of(2) == 5);
  CHECK(torch::equal(s.get(2).y, lab.narrow(0, 20, 5)));
  CHECK(num_batches(25, 10, false) == 3);
  CHECK(num_batches(25, 10, true) == 2);
  CHECK(batch_size_of(25, 10, 2) == 5);
}

TEST_CASE("normalization standardizes each channel with train statistics") {
  auto img = torch::randint(0, 256, {200, 3, 8, 8}, torch::kInt64).to(torch::kUInt8);
  auto n = Normalizer::fit(img);
  auto x = n.apply(img);
  CHECK(x.mean({0, 2, 3}).abs().max().item<float>() < 1e-4f);
  CHECK((x.std({0, 2, 3}) - 1).abs().max().item<float>() < 1e-3f);
  CHECK(torch::allclose(Normalizer::identity(3).apply(img), img.to(torch::kFloat32) / 255));
}

TEST_CASE("horizontal flips mirror whole images and padded crops keep the shape") {
  auto img = torch::arange(16 * 28 * 28, torch::kInt64).remainder(251).to(torch::kUInt8).view({16, 1, 28, 28});
  auto lab = torch::zeros({16}, torch::kInt64);
  MemorySource flip(Dataset{img, lab}, Normalizer::identity(1), 16, true, Augment{true, 0}, 3);
  flip.start_epoch(0);
  auto x = flip.get(0).x;
  auto raw = Normalizer::identity(1).apply(img);
  int flipped = 0, same = 0;
  for (int64_t i = 0; i < 16; ++i) {
    bool is_same = false, is_flipped = false;
    for (int64_t j = 0; j < 16; ++j) {
      is_same |= torch::equal(x[i], raw[j]);
      is_flipped |= torch::equal(x[i], raw[j].flip({2}));
    }
    same += is_same, flipped += is_flipped;
    CHECK((is_same || is_flipped));
  }
  CHECK(flipped > 0);
  CHECK(same > 0);
  MemorySource crop(Dataset{img, lab}, Normalizer::identity(1), 16, true, Augment{false, 4}, 3);
  crop.start_epoch(0);
  CHECK(crop.get(0).x.sizes() == torch::IntArrayRef({16, 1, 28, 28}));
}

TEST_CASE("the reversal task: permutations of 0..9 with reversed targets and a disjoint test set") {
  const auto s = make_reversal_task(3000, 500, 5);
  REQUIRE(s.train.images.sizes() == torch::IntArrayRef({3000, 10}));
  REQUIRE(s.test.labels.sizes() == torch::IntArrayRef({500, 10}));
  CHECK(s.num_classes == 10);
  CHECK(s.train.sequences());
  const auto x = s.train.images.to(torch::kInt64);
  CHECK(torch::equal(s.train.labels, x.flip({1})));
  CHECK(torch::equal(std::get<0>(x.sort(1)), torch::arange(10).expand({3000, 10})));  // each row a permutation
  auto ranks = [](const torch::Tensor& t) {
    std::set<int64_t> r;
    auto c = t.to(torch::kInt64).contiguous();
    for (int64_t i = 0; i < c.size(0); ++i) r.insert(permutation_rank(c[i].data_ptr<int64_t>(), 10));
    return r;
  };
  const auto test = ranks(s.test.images), train = ranks(s.train.images);
  CHECK(test.size() == 500);  // distinct
  for (int64_t r : train) CHECK(test.count(r) == 0);
  CHECK(torch::equal(make_reversal_task(3000, 500, 5).train.images, s.train.images));  // the seed decides
  CHECK_FALSE(torch::equal(make_reversal_task(3000, 500, 6).train.images, s.train.images));
}

TEST_CASE("permutation rank is a bijection onto 0..n!-1") {
  std::set<int64_t> seen;
  std::vector<int64_t> p{0, 1, 2, 3};
  do seen.insert(permutation_rank(p.data(), 4));
  while (std::next_permutation(p.begin(), p.end()));
  CHECK(seen.size() == 24);
  CHECK(*seen.begin() == 0);
  CHECK(*seen.rbegin() == 23);
}

TEST_CASE("the reversal task needs no data folder and batches token ids with per-token labels") {
  DataConfig c;
  c.dataset = "reversal", c.train_limit = 100, c.test_limit = 40;
  const auto s = load_dataset(c, 1);
  CHECK(s.train.size() == 100);
  CHECK(s.test.size() == 40);
  MemorySource src(s.train, Normalizer::identity(1), 32, true, Augment{true, 2}, 1);
  src.start_epoch(0);
  const auto b = src.get(0);
  CHECK(b.x.sizes() == torch::IntArrayRef({32, 10}));
  CHECK(b.x.scalar_type() == torch::kFloat32);
  CHECK(b.y.sizes() == torch::IntArrayRef({32, 10}));
  CHECK(torch::equal(b.y, b.x.to(torch::kInt64).flip({1})));  // no augmentation of tokens
}

TEST_CASE("autoencode stacks each image on a 0.2 uncertainty patch, and the target is the input") {
  const auto dir = test::temp_dir("ae");
  test::write_idx_dataset(dir, 40, 20, 3);
  DataConfig c;
  c.dataset = "fashion-mnist", c.dir = dir, c.task = "autoencode";
  const auto s = load_dataset(c);
  REQUIRE(s.train.images.sizes() == torch::IntArrayRef({40, 1, 56, 28}));
  CHECK(s.train.reconstruct);
  MemorySource src(s.train, Normalizer::identity(1), 16, true, Augment{true, 2}, 1);
  src.start_epoch(0);
  const auto b = src.get(0);
  CHECK(b.x.sizes() == torch::IntArrayRef({16, 1, 56, 28}));
  CHECK(torch::equal(b.x, b.y));
  CHECK(torch::allclose(b.x.narrow(2, 28, 28), torch::full({16, 1, 28, 28}, 0.2f)));
  CHECK(b.x.narrow(2, 0, 28).max().item<float>() > 0.5f);  // the image, scaled to [0, 1]
}

TEST_CASE("replica shares of training batches: equal parts that together make the whole batch") {
  torch::Tensor img, lab;
  test::make_images(103, 5, img, lab);
  Dataset d{img.unsqueeze(1), lab};
  auto norm = Normalizer::identity(1);
  MemorySource whole(d, norm, 12, true, {}, 42), first(d, norm, 12, true, {}, 42), second(d, norm, 12, true, {}, 42);
  first.shard(0, 2);
  second.shard(1, 2);
  for (auto* s : {&whole, &first, &second}) s->start_epoch(3);
  CHECK(first.num_batches() == whole.num_batches());
  CHECK(first.batch_size_of(0) == 6);
  for (int64_t t = 0; t < whole.num_batches(); ++t) {
    const auto w = whole.get(t), a = first.get(t), b = second.get(t);
    CHECK(torch::equal(torch::cat({a.x, b.x}), w.x));
    CHECK(torch::equal(torch::cat({a.y, b.y}), w.y));
  }
  MemorySource odd(d, norm, 10, true, {}, 42);
  CHECK_THROWS_WITH(odd.shard(0, 3), Contains("batch of 10"));
  MemorySource eval(d, norm, 10, false, {}, 42);
  CHECK_THROWS(eval.shard(0, 2));
}
