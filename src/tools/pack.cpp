// bll-pack: packs an image folder into shards of fixed-size images (data.dataset: packed), so that
// training crops and flips without decoding (bll/data/packed.h).
#include <cstdio>
#include <string>
#include <vector>

#include "bll/data/dataset.h"
#include "bll/data/packed.h"
#include "bll/error.h"
#include "tool_main.h"

namespace {

const char* kUsage =
    "usage: bll-pack IMAGE_FOLDER OUT [--side 64] [--channels 3] [--shard-images 4096] [--workers 2]\n"
    "       bll-pack --dataset NAME DATA_DIR OUT [--side S] [--shard-images 4096]\n"
    "Packs IMAGE_FOLDER/train/<class>/* and IMAGE_FOLDER/val/<class>/* (JPEG, PNG) into OUT: each image's\n"
    "shorter side resized to --side and its centre square kept, in shards of --shard-images images with\n"
    "their sizes and CRCs in OUT/MANIFEST. Run again, it goes on after the last complete shard.\n"
    "--dataset packs a built-in data set (mnist, fashion-mnist, cifar10) read from DATA_DIR instead: its\n"
    "training and test images, at their own side (28, 32) unless --side says otherwise, and channels.\n"
    "Train on it with data.dataset=packed data.dir=OUT (data.image_size <= --side).\n"
    "Exit codes: 0 done, 2 usage error, 3 data error.\n";

int64_t number(const std::string& flag, const std::string& text, int64_t lo, int64_t hi) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || v < lo || v > hi)
    throw bll::ConfigError(flag + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                           "], got '" + text + "'");
  return v;
}

int run(const std::vector<std::string>& args) {
  std::vector<std::string> paths;
  bll::PackOptions opt;
  std::string dataset;
  bool side_given = false, channels_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) {
      paths.push_back(a);
      continue;
    }
    if (i + 1 >= args.size()) throw bll::ConfigError(a + ": needs a value");
    const std::string& v = args[++i];
    if (a == "--side") opt.side = number(a, v, 8, 4096), side_given = true;
    else if (a == "--channels") opt.channels = number(a, v, 1, 3), channels_given = true;
    else if (a == "--dataset") dataset = v;
    else if (a == "--shard-images") opt.shard_images = number(a, v, 1, int64_t(1) << 24);
    else if (a == "--workers") opt.workers = number(a, v, 1, 256);
    else throw bll::ConfigError(a + ": unknown option (bll-pack --help)");
  }
  if (paths.size() != 2)
    throw bll::ConfigError(std::string(dataset.empty() ? "expected IMAGE_FOLDER and OUT\n" : "expected DATA_DIR and OUT\n") +
                           kUsage);
  if (opt.channels == 2) throw bll::ConfigError("--channels: 1 (grey) or 3 (RGB)");
  opt.progress = [](const std::string& line) {
    std::printf("bll-pack: %s\n", line.c_str());
    std::fflush(stdout);
  };
  bll::PackManifest m;
  if (dataset.empty()) {
    m = bll::pack_image_folder(paths[0], paths[1], opt);
  } else {
    bll::DataConfig data;
    data.dataset = dataset, data.dir = paths[0], data.task = "classify";
    const auto shape = bll::known_shape(data);
    if (shape && shape->sample.size() == 3) {  // the set's own channels and side unless told
      if (!channels_given) opt.channels = shape->sample[0];
      if (!side_given) opt.side = shape->sample[1];
    }
    m = bll::pack_dataset(data, paths[1], opt);
  }
  int64_t train = 0, val = 0;
  for (const auto& s : m.shards) (s.split == "train" ? train : val) += s.count;
  std::printf("bll-pack: %s: %lld training and %lld validation images of %lldx%lld, %lld channel%s, %zu classes, "
              "%zu shards (train with data.dataset=packed data.dir=%s)\n",
              paths[1].c_str(), (long long)train, (long long)val, (long long)m.side, (long long)m.side,
              (long long)m.channels, m.channels == 1 ? "" : "s", m.classes.size(), m.shards.size(), paths[1].c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return bll::tool_main("bll-pack", kUsage, argc, argv, 2, run); }
