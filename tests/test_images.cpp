// Image files and image folders (bll/data/images.h, bll/data/folder.h): decoding, resampling,
// crops, the folder's classes and errors, and batches that depend on (seed, epoch, t) alone.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "bll/data/dataset.h"
#include "bll/data/folder.h"
#include "bll/data/images.h"
#include "bll/data/packed.h"
#include "bll/data/sources.h"
#include "bll/checkpoint.h"
#include "bll/error.h"
#include "fixtures.h"

using namespace bll;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

Image pattern(int64_t h, int64_t w, int64_t c) {
  Image im;
  im.height = h, im.width = w, im.channels = c;
  im.pixels.resize(size_t(h * w * c));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t ch = 0; ch < c; ++ch) im.row(y)[x * c + ch] = uint8_t((x * 7 + y * 3 + ch * 50) % 256);
  return im;
}

std::string data_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  FAIL("no DataError");
  return "";
}

// The images of batch t of a fresh source over `folder`.
torch::Tensor batch_images(const ImageFolder& folder, const ImageTransform& tf, int64_t workers, int64_t epoch,
                           std::vector<int64_t> read) {
  ImageSource s(folder_store(folder, 3), tf, Normalizer::identity(3), 8, true, 5, workers);
  s.start_epoch(epoch);
  torch::Tensor last;
  for (int64_t t : read) last = s.get(t).x;
  return last;
}

}  // namespace

TEST_CASE("images: a PNG decodes to the pixels written, a JPEG close to them, grey files as RGB") {
  const auto dir = test::temp_dir("images-decode");
  const Image rgb = pattern(20, 30, 3);
  write_png(dir + "/a.png", rgb);
  const Image png = decode_image(dir + "/a.png", 3);
  CHECK(png.height == 20);
  CHECK(png.width == 30);
  CHECK(png.pixels == rgb.pixels);

  Image flat = rgb;
  std::fill(flat.pixels.begin(), flat.pixels.end(), uint8_t(120));
  write_jpeg(dir + "/b.jpg", flat, 95);
  const Image jpg = decode_image(dir + "/b.jpg", 3);
  REQUIRE(jpg.pixels.size() == flat.pixels.size());
  for (uint8_t v : jpg.pixels) CHECK(std::abs(int(v) - 120) <= 2);

  const Image grey = pattern(16, 16, 1);
  write_jpeg(dir + "/g.jpg", grey, 95);
  const Image as_rgb = decode_image(dir + "/g.jpg", 3);
  REQUIRE(as_rgb.channels == 3);
  for (int64_t p = 0; p < 16 * 16; ++p) {  // the grey value in every channel
    CHECK(as_rgb.pixels[size_t(p * 3)] == as_rgb.pixels[size_t(p * 3 + 1)]);
    CHECK(as_rgb.pixels[size_t(p * 3)] == as_rgb.pixels[size_t(p * 3 + 2)]);
  }
  CHECK(decode_image(dir + "/a.png", 1).channels == 1);

  std::ofstream(dir + "/not.jpg") << "hello";
  CHECK_THAT(data_error([&] { decode_image(dir + "/not.jpg", 3); }), Contains("not.jpg: neither a JPEG nor a PNG file"));
  std::ifstream in(dir + "/b.jpg", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir + "/cut.jpg", std::ios::binary) << bytes.substr(0, 40);
  CHECK_THAT(data_error([&] { decode_image(dir + "/cut.jpg", 3); }), Contains("cut.jpg: not a readable JPEG"));
  // Cut inside the image data, libjpeg would only warn and fill the rest with grey.
  write_jpeg(dir + "/big.jpg", pattern(64, 64, 3), 95);
  std::ifstream big_in(dir + "/big.jpg", std::ios::binary);
  const std::string big((std::istreambuf_iterator<char>(big_in)), {});
  std::ofstream(dir + "/short.jpg", std::ios::binary) << big.substr(0, big.size() * 2 / 3);
  CHECK_THAT(data_error([&] { decode_image(dir + "/short.jpg", 3); }), Contains("short.jpg: not a readable JPEG (Premature end"));
}

TEST_CASE("images: resizing keeps a flat image flat and, shrinking, averages what it leaves out") {
  Image flat = pattern(100, 80, 3);
  std::fill(flat.pixels.begin(), flat.pixels.end(), uint8_t(77));
  const Image small = resize(flat, {0, 0, 100, 80}, 30, 20), big = resize(flat, {10, 10, 50, 40}, 120, 90);
  for (uint8_t v : small.pixels) CHECK(v == 77);
  for (uint8_t v : big.pixels) CHECK(v == 77);
  // A one-pixel checkerboard shrunk 8x: with antialiasing every pixel is the mean grey (point
  // sampling would keep black and white).
  Image board = pattern(64, 64, 1);
  for (int64_t y = 0; y < 64; ++y)
    for (int64_t x = 0; x < 64; ++x) board.row(y)[x] = (x + y) % 2 ? 255 : 0;
  const Image grey = resize(board, {0, 0, 64, 64}, 8, 8);
  for (uint8_t v : grey.pixels) CHECK(std::abs(int(v) - 128) <= 2);
  // In one pass to normalized channel planes, mirrored or not: resize's bytes, normalized.
  const Image src = pattern(50, 70, 3);
  const Box box{3, 5, 40, 61};
  Image bytes = resize(src, box, 24, 24);
  const float scale[3] = {0.5f, 2.0f, -1.0f}, shift[3] = {1.0f, -3.0f, 0.25f};
  for (bool flip : {false, true}) {
    std::vector<float> fused(3 * 24 * 24), separate(3 * 24 * 24);
    resize_planar(src, box, 24, 24, {fused.data(), scale, shift, flip});
    if (flip) flip_horizontal(bytes);
    write_planar(bytes, {separate.data(), scale, shift, false});
    CHECK(fused == separate);
    CHECK(fused[1] == float(bytes.row(0)[3]) * 0.5f + 1.0f);  // channel 0, row 0, column 1
  }
  // The evaluation crop: shorter side to size / 0.875, then the centre.
  const Image wide = pattern(64, 128, 3);
  const Image centre = resize_center_crop(wide, 28);
  CHECK(centre.height == 28);
  CHECK(centre.width == 28);
  Image mirrored = centre;
  flip_horizontal(mirrored);
  CHECK(mirrored.row(3)[0] == centre.row(3)[27 * 3]);
}

TEST_CASE("images: random resized boxes lie inside the image, within the scale and ratio asked") {
  ImageRng rng{7};
  int64_t in_range = 0;
  for (int i = 0; i < 2000; ++i) {
    const Box b = random_resized_box(200, 300, 0.08, 1.0, 0.75, 4.0 / 3.0, rng);
    REQUIRE(b.top >= 0);
    REQUIRE(b.left >= 0);
    REQUIRE(b.top + b.height <= 200);
    REQUIRE(b.left + b.width <= 300);
    const double area = double(b.height * b.width) / (200.0 * 300.0), ratio = double(b.width) / double(b.height);
    if (area >= 0.07 && area <= 1.01 && ratio >= 0.7 && ratio <= 1.4) ++in_range;
  }
  CHECK(in_range == 2000);
  const Box fallback = random_resized_box(10, 100, 0.9, 1.0, 1.0, 1.0, rng);  // no square of 90% fits
  CHECK(fallback.height == 10);
  CHECK(fallback.width == 10);
  CHECK(fallback.left == 45);
}

TEST_CASE("folder: classes are the sorted sub-folders, val must use train's, and bad folders are named") {
  const auto dir = test::temp_dir("folder-list");
  test::write_image_folder(dir, 40, 20, 24, 1);
  const ImageFolders f = list_image_folders(dir);
  REQUIRE(f.train.classes.size() == 10);
  CHECK(f.train.classes.front() == "c0");
  CHECK(f.train.size() == 40);
  CHECK(f.val.size() == 20);
  for (int64_t i = 0; i < f.train.size(); ++i)
    CHECK(fs::path(f.train.files[size_t(i)]).parent_path().filename() == "c" + std::to_string(f.train.labels[size_t(i)]));

  fs::create_directories(dir + "/val/zebra");
  std::ofstream(dir + "/val/zebra/x.png") << "x";
  CHECK_THAT(data_error([&] { list_image_folder(dir + "/val", &f.train.classes); }),
             Contains("val/zebra: class 'zebra' is not a class of the training split"));
  fs::create_directories(dir + "/train/empty");
  CHECK_THAT(data_error([&] { list_image_folder(dir + "/train"); }),
             Contains("train/empty: no JPEG or PNG images in this class folder"));
  CHECK_THAT(data_error([&] { list_image_folder(dir + "/nothing"); }), Contains("nothing: no such folder"));

  // A file that does not decode stops the batch that holds it, named.
  ImageFolder broken = f.val;
  std::ofstream(dir + "/broken.jpg") << "not an image";
  broken.files[3] = dir + "/broken.jpg";
  ImageSource s(folder_store(broken, 3), ImageTransform{}, Normalizer::identity(3), 4, false, 1, 2);
  s.start_epoch(0);
  CHECK_NOTHROW(s.get(1));
  CHECK_THAT(data_error([&] { s.get(0); }), Contains("broken.jpg: neither a JPEG nor a PNG file"));
}

TEST_CASE("folder: with on_bad_file skip, an unreadable file is replaced by the next image in the epoch's order") {
  const auto dir = test::temp_dir("folder-skip");
  test::write_image_folder(dir, 8, 16, 24, 1);
  ImageFolder val = list_image_folder(dir + "/val");
  std::ofstream(dir + "/broken.jpg") << "not an image";
  val.files[3] = dir + "/broken.jpg";
  write_jpeg(dir + "/big.jpg", pattern(64, 64, 3), 95);
  std::ifstream big_in(dir + "/big.jpg", std::ios::binary);
  const std::string big((std::istreambuf_iterator<char>(big_in)), {});
  std::ofstream(dir + "/short.jpg", std::ios::binary) << big.substr(0, big.size() * 2 / 3);
  val.files[5] = dir + "/short.jpg";
  ImageTransform tf;
  tf.size = 16;
  // Evaluation keeps the folder's order and crops without draws: a replaced row is its successor.
  ImageSource s(folder_store(val, 3), tf, Normalizer::identity(3), 4, false, 1, 2, /*skip_bad=*/true);
  s.start_epoch(0);
  const Batch b0 = s.get(0), b1 = s.get(1);
  CHECK(s.replaced_files() == 2);
  CHECK(torch::equal(b0.x[3], b1.x[0]));  // file 3 -> file 4
  CHECK(b0.y[3].item<int64_t>() == val.labels[4]);
  CHECK(torch::equal(b1.x[1], b1.x[2]));  // file 5 -> file 6
  CHECK(b1.y[1].item<int64_t>() == val.labels[6]);
  CHECK(!torch::equal(b0.x[2], b0.x[3]));
  s.start_epoch(1);
  CHECK(s.replaced_files() == 0);

  // Training: the same batch whatever was read before (a resume), and without skip the file is named.
  ImageFolder train = list_image_folder(dir + "/train");
  train.files[2] = dir + "/short.jpg";
  tf.hflip = true;
  ImageSource a(folder_store(train, 3), tf, Normalizer::identity(3), 8, true, 4, 2, true),
      b(folder_store(train, 3), tf, Normalizer::identity(3), 8, true, 4, 1, true),
      strict(folder_store(train, 3), tf, Normalizer::identity(3), 8, true, 4, 2);
  a.start_epoch(1), b.start_epoch(1), strict.start_epoch(1);
  const Batch ba = a.get(0);
  CHECK(torch::equal(ba.x, b.get(0).x));
  CHECK(torch::equal(ba.y, b.get(0).y));
  CHECK(a.replaced_files() == 1);
  CHECK_THAT(data_error([&] { strict.get(0); }), Contains("short.jpg: not a readable JPEG"));
}

TEST_CASE("folder: the normalization saved with a run is exact, and opening the data with it uses it") {
  const Normalizer n{torch::tensor({0.25f, 0.5f, 0.123456789f}), torch::tensor({0.3f, 1.0f / 3.0f, 2.0f})};
  const Normalizer back = Normalizer::from_json(n.to_json(), "n.json");
  CHECK(torch::equal(back.mean, n.mean));
  CHECK(torch::equal(back.std, n.std));
  CHECK_THAT(data_error([] { Normalizer::from_json("{\"mean\": [1]}", "bad.json"); }), Contains("bad.json: not a normalization file"));
  CHECK_THAT(data_error([] { Normalizer::from_json("{\"mean\": [1], \"std\": [0]}", "z.json"); }),
             Contains("z.json: a standard deviation is not positive"));

  const auto dir = test::temp_dir("folder-norm");
  test::write_image_folder(dir, 32, 16, 24, 3);
  const std::string yaml = "data: {dataset: folder, dir: " + dir + ", image_size: 16}\nmodel: {type: cnn, widths: [4], blocks: 1}\n"
                           "train: {epochs: 1, batch_size: 8}\n";
  const Config fitted = parse_config(yaml, "t", {}), plain = parse_config(yaml, "t", {"data.normalize=false"});
  const OpenData a = open_data(fitted);
  REQUIRE(a.image_norm);
  CHECK(!open_data(plain).image_norm);
  const Normalizer identity = Normalizer::identity(3);
  const OpenData given = open_data(fitted, 0, 1, &identity), none = open_data(plain);
  CHECK(torch::equal(given.image_norm->mean, identity.mean));
  given.test->start_epoch(0), none.test->start_epoch(0), a.test->start_epoch(0);
  const torch::Tensor x = given.test->get(0).x;
  CHECK(torch::equal(x, none.test->get(0).x));  // the saved statistics, not a fit
  CHECK(!torch::equal(x, a.test->get(0).x));
  // Given by data.normalization: used, and one of another channel count is refused by name.
  std::ofstream(dir + "/n.json") << identity.to_json();
  const OpenData by_key = open_data(parse_config(yaml, "t", {"data.normalization=" + dir + "/n.json"}));
  CHECK(torch::equal(by_key.image_norm->std, identity.std));
  std::ofstream(dir + "/grey.json") << Normalizer::identity(1).to_json();
  CHECK_THAT(data_error([&] { open_data(parse_config(yaml, "t", {"data.normalization=" + dir + "/grey.json"})); }),
             Contains("grey.json: statistics of 1 channels, data.channels is 3"));
}

TEST_CASE("folder: a batch depends on (seed, epoch, t) alone, not on the threads or what was read before") {
  const auto dir = test::temp_dir("folder-batches");
  test::write_image_folder(dir, 64, 16, 48, 2);
  const ImageFolder train = list_image_folder(dir + "/train");
  ImageTransform tf;
  tf.size = 32, tf.hflip = true;
  const auto a = batch_images(train, tf, 1, 1, {0, 1, 2, 3});
  CHECK(torch::equal(a, batch_images(train, tf, 3, 1, {3})));     // read first, by three threads
  CHECK(torch::equal(a, batch_images(train, tf, 2, 1, {5, 3})));  // after a batch further on
  CHECK(!torch::equal(a, batch_images(train, tf, 1, 2, {3})));    // another epoch: other crops
  CHECK(a.sizes() == torch::IntArrayRef({8, 3, 32, 32}));

  // Replicas: each one's share is its rows of the whole batch.
  ImageSource whole(folder_store(train, 3), tf, Normalizer::identity(3), 8, true, 5, 2),
      half(folder_store(train, 3), tf, Normalizer::identity(3), 8, true, 5, 2);
  half.shard(1, 2);
  whole.start_epoch(1), half.start_epoch(1);
  CHECK(torch::equal(whole.get(2).x.narrow(0, 4, 4), half.get(2).x));
}

TEST_CASE("packed: bll-pack's shards hold the centre squares of the folder's images, with their labels") {
  const auto dir = test::temp_dir("packed-content");
  test::write_image_folder(dir + "/images", 30, 12, 40, 3);
  PackOptions opt;
  opt.side = 24, opt.shard_images = 7, opt.workers = 2;
  std::vector<std::string> lines;
  opt.progress = [&](const std::string& line) { lines.push_back(line); };
  const PackManifest m = pack_image_folder(dir + "/images", dir + "/packed", opt);
  CHECK(m.complete);
  CHECK(m.shards.size() == 5 + 2);  // 30 training images in shards of 7, 12 validation images
  CHECK(lines.size() == m.shards.size());
  const ImageFolders f = list_image_folders(dir + "/images");
  PackManifest read;
  const auto train = open_packed(dir + "/packed", "train", &read);
  CHECK(read.classes == f.train.classes);
  REQUIRE(train->size() == 30);
  for (int64_t i : {0, 6, 7, 29}) {
    INFO("image " << i);
    CHECK(train->label(i) == f.train.labels[size_t(i)]);
    CHECK(train->image(i).pixels == center_square(decode_image(f.train.files[size_t(i)], 3), 24).pixels);
  }
  CHECK(open_packed(dir + "/packed", "val", nullptr)->size() == 12);
}

TEST_CASE("packed: bll-pack --dataset packs a built-in set's images unchanged, with their labels") {
  const auto dir = test::temp_dir("packed-builtin");
  test::write_cifar_dataset(dir + "/cifar", 40, 12, 6);
  DataConfig d;
  d.dataset = "cifar10", d.dir = dir + "/cifar", d.task = "classify";
  PackOptions opt;
  opt.side = 32, opt.channels = 3, opt.shard_images = 16;
  const PackManifest m = pack_dataset(d, dir + "/packed", opt);
  CHECK(m.classes == std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
  const DataSplit split = load_dataset(d);
  const auto train = open_packed(dir + "/packed", "train", nullptr), val = open_packed(dir + "/packed", "val", nullptr);
  REQUIRE(train->size() == 40);
  CHECK(val->size() == 12);
  for (int64_t i : {0, 15, 16, 39}) {
    INFO("image " << i);
    const Image im = train->image(i);  // HWC bytes of the CHW set, at its own side: no resampling
    const auto hwc = split.train.images[i].permute({1, 2, 0}).contiguous();
    CHECK(std::vector<uint8_t>(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel()) == im.pixels);
    CHECK(train->label(i) == split.train.labels[i].item<int64_t>());
  }
  opt.channels = 1;
  CHECK_THROWS_WITH(pack_dataset(d, dir + "/p1", opt), Contains("cifar10 has 3-channel images, --channels is 1"));
  d.dataset = "reversal";
  CHECK_THROWS_WITH(pack_dataset(d, dir + "/p2", opt), Contains("reversal is not a built-in image data set"));
}

TEST_CASE("packed: a pack cut off goes on where it stopped, and a cut, truncated or corrupt pack is named") {
  const auto dir = test::temp_dir("packed-faults");
  test::write_image_folder(dir + "/images", 20, 8, 32, 4);
  PackOptions opt;
  opt.side = 16, opt.shard_images = 6;
  const PackManifest whole = pack_image_folder(dir + "/images", dir + "/packed", opt);
  // Cut off after its second shard: the manifest lists two shards and has no end.
  PackManifest cut = whole;
  cut.shards.resize(2);
  cut.complete = false;
  write_atomically(dir + "/packed/MANIFEST", format_pack_manifest(cut));
  fs::remove(dir + "/packed/" + whole.shards[2].file);
  CHECK_THAT(data_error([&] { open_packed(dir + "/packed", "train", nullptr); }),
             Contains("MANIFEST: the pack was cut off (run bll-pack again to finish it)"));
  int64_t written = 0;
  opt.progress = [&](const std::string&) { ++written; };
  const PackManifest again = pack_image_folder(dir + "/images", dir + "/packed", opt);
  CHECK(written == int64_t(whole.shards.size()) - 2);  // only the shards that were missing
  REQUIRE(again.shards.size() == whole.shards.size());
  for (size_t k = 0; k < whole.shards.size(); ++k) CHECK(again.shards[k].crc == whole.shards[k].crc);

  const std::string shard = dir + "/packed/" + whole.shards[1].file, bytes = read_bytes(shard);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 1;
  write_atomically(shard, flipped);
  CHECK_THAT(data_error([&] { open_packed(dir + "/packed", "train", nullptr); }), Contains(whole.shards[1].file + ": CRC mismatch"));
  write_atomically(shard, bytes.substr(0, 100));
  CHECK_THAT(data_error([&] { open_packed(dir + "/packed", "train", nullptr); }), Contains("(a truncated shard)"));
  write_atomically(dir + "/packed/MANIFEST", "bll-pack 1\nside x\n");
  CHECK_THAT(data_error([&] { open_packed(dir + "/packed", "train", nullptr); }), Contains("malformed pack manifest (line 'side x')"));
}
