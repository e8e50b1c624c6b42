#include "fixtures.h"

#include <ftw.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <filesystem>
#include <set>

#include "bll/data/cifar.h"
#include "bll/data/idx.h"
#include "bll/data/images.h"

namespace bll::test {
namespace fs = std::filesystem;

void make_images(int64_t n, uint64_t seed, torch::Tensor& images, torch::Tensor& labels) {
  auto gen = at::detail::createCPUGenerator(seed);
  labels = torch::arange(n, torch::kInt64).remainder(10);
  auto img = torch::rand({n, 28, 28}, gen).mul(60);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = labels[i].item<int64_t>();
    const int64_t r = (c / 5) * 14 + 3, col = (c % 5) * 5 + 1;
    img[i].narrow(0, r, 7).narrow(1, col, 7).add_(180);
  }
  images = img.clamp(0, 255).to(torch::kUInt8);
}

void write_idx_dataset(const std::string& dir, int64_t n_train, int64_t n_test, uint64_t seed) {
  fs::create_directories(dir);
  torch::Tensor img, lab;
  make_images(n_train, seed, img, lab);
  write_idx_images(dir + "/train-images-idx3-ubyte.gz", img);
  write_idx_labels(dir + "/train-labels-idx1-ubyte.gz", lab);
  make_images(n_test, seed + 1, img, lab);
  write_idx_images(dir + "/t10k-images-idx3-ubyte.gz", img);
  write_idx_labels(dir + "/t10k-labels-idx1-ubyte.gz", lab);
}

void write_cifar_dataset(const std::string& dir, int64_t n_train, int64_t n_test, uint64_t seed) {
  fs::create_directories(dir);
  // 28x28 patterns padded to 32x32, the same in every channel.
  const auto colour = [](const torch::Tensor& grey) {
    return torch::constant_pad_nd(grey, {2, 2, 2, 2}).unsqueeze(1).expand({-1, 3, 32, 32}).contiguous();
  };
  torch::Tensor img, lab;
  make_images(n_train, seed, img, lab);
  const int64_t per_file = (n_train + 4) / 5;
  for (int64_t i = 0; i < 5; ++i) {
    const int64_t start = std::min(n_train, i * per_file), len = std::min(n_train, start + per_file) - start;
    write_cifar10(dir + "/data_batch_" + std::to_string(i + 1) + ".bin", colour(img.narrow(0, start, len)),
                  lab.narrow(0, start, len));
  }
  make_images(n_test, seed + 1, img, lab);
  write_cifar10(dir + "/test_batch.bin", colour(img), lab);
}

namespace {
void write_folder_split(const std::string& dir, int64_t n, int64_t side, uint64_t seed, bool jpeg_only) {
  torch::Tensor img, lab;
  make_images(n, seed, img, lab);
  auto big = torch::upsample_nearest2d(img.unsqueeze(1).to(torch::kFloat32), {side, side}).squeeze(1).to(torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = lab[i].item<int64_t>();
    const std::string cls = dir + "/c" + std::to_string(c);
    fs::create_directories(cls);
    const bool grey = !jpeg_only && i % 5 == 4, png = !jpeg_only && i % 3 == 2;
    Image im;
    im.height = im.width = side;
    im.channels = grey ? 1 : 3;
    im.pixels.resize(size_t(side * side * im.channels));
    const uint8_t* px = big[i].contiguous().data_ptr<uint8_t>();
    for (int64_t p = 0; p < side * side; ++p)
      for (int64_t ch = 0; ch < im.channels; ++ch)  // colour: the pattern in red, half of it in green
        im.pixels[size_t(p * im.channels + ch)] = uint8_t(ch == 1 ? px[p] / 2 : ch == 2 ? 40 : px[p]);
    char name[32];
    std::snprintf(name, sizeof name, "/%06lld.%s", (long long)i, png ? "png" : "jpg");
    if (png) write_png(cls + name, im);
    else write_jpeg(cls + name, im, 90);
  }
}
}  // namespace

void write_image_folder(const std::string& dir, int64_t n_train, int64_t n_test, int64_t side, uint64_t seed,
                        bool jpeg_only) {
  write_folder_split(dir + "/train", n_train, side, seed, jpeg_only);
  write_folder_split(dir + "/val", n_test, side, seed + 1, jpeg_only);
}

// Removes a directory tree with POSIX nftw, not std::filesystem::remove_all: the CUDA libtorch
// of PyTorch's wheels exports its own copy of remove_all, which the dynamic linker may bind
// here, and that copy jumps to a null pointer on a non-empty directory.
void remove_tree(const std::string& path) {
  nftw(path.c_str(), [](const char* file, const struct stat*, int, struct FTW*) { return std::remove(file); }, 16,
       FTW_DEPTH | FTW_PHYS);
}

namespace {

// The folders this process made, removed when it exits (after main, so after MPI_Finalize in
// the MPI suites, when no other rank reads them any more). BLL_KEEP_TEST_DIRS=1 keeps them.
struct MadeFolders {
  std::set<std::string> paths;
  ~MadeFolders() {
    if (std::getenv("BLL_KEEP_TEST_DIRS")) return;
    for (const auto& p : paths) remove_tree(p);
  }
};

MadeFolders& made_folders() {
  static MadeFolders folders;
  return folders;
}

}  // namespace

std::string temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("bll-test-" + std::to_string(getpid()) + "-" + name);
  remove_tree(p.string());
  fs::create_directories(p);
  made_folders().paths.insert(p.string());
  return p.string();
}

Config small_cnn_config(const std::vector<std::string>& overrides) {
  return parse_config(
      "data: {dataset: fashion-mnist, dir: d}\n"
      "model: {type: cnn, widths: [4, 8, 8], head_hidden: 16, blocks: 4}\n"
      "train: {epochs: 1, seed: 3}\n",
      "t", overrides);
}

std::string small_config_yaml(const std::string& dir, const std::string& run_dir) {
  return "data: {dataset: fashion-mnist, dir: '" + dir + "'}\n"
         "model: {type: cnn, widths: [8, 16, 16], head_hidden: 32, blocks: 4}\n"
         "loss: {kl_weight: 1.0, pred_weight: 1.0}\n"
         "optim: {name: adam, lr: 0.003}\n"
         "train: {epochs: 2, batch_size: 32, seed: 7, in_flight: 2}\n"
         "runtime: {run_dir: '" + run_dir + "', overwrite: true, progress: 'off', save_params: false, threads: 1}\n";
}

}  // namespace bll::test
