// Packed shards: the manifest, the mmap-backed store, and bll-pack's writer.
#include "bll/data/packed.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <thread>


#include "bll/checkpoint.h"
#include "bll/data/dataset.h"
#include "bll/data/folder.h"
#include "bll/error.h"

namespace bll {
namespace fs = std::filesystem;
namespace {

constexpr const char* kMagic = "bll-pack 1";

std::string manifest_path(const std::string& dir) { return (fs::path(dir) / "MANIFEST").string(); }

// One shard file mapped read-only: its images, then its labels.
struct Mapping {
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  int64_t count = 0;
  std::string path;
  ~Mapping() {
    if (data) munmap(const_cast<uint8_t*>(data), bytes);
  }
};

class PackedStore : public ImageStore {
 public:
  PackedStore(int64_t side, int64_t channels) : side_(side), channels_(channels) {}
  void add(std::unique_ptr<Mapping> m) {
    first_.push_back(size_ + 0);
    size_ += m->count;
    shards_.push_back(std::move(m));
  }
  int64_t size() const override { return size_; }
  int64_t label(int64_t i) const override {
    const auto [m, j] = find(i);
    int64_t label;
    std::memcpy(&label, m->data + m->count * image_bytes() + j * int64_t(sizeof label), sizeof label);
    return label;
  }
  Image image(int64_t i) const override {
    const auto [m, j] = find(i);
    Image im;
    im.height = im.width = side_, im.channels = channels_;
    const uint8_t* from = m->data + j * image_bytes();
    im.pixels.assign(from, from + image_bytes());
    return im;
  }
  std::string name(int64_t i) const override {
    const auto [m, j] = find(i);
    return m->path + "#" + std::to_string(j);
  }

 private:
  int64_t image_bytes() const { return side_ * side_ * channels_; }
  std::pair<const Mapping*, int64_t> find(int64_t i) const {
    const size_t s = size_t(std::upper_bound(first_.begin(), first_.end(), i) - first_.begin()) - 1;
    return {shards_[s].get(), i - first_[s]};
  }

  int64_t side_, channels_, size_ = 0;
  std::vector<int64_t> first_;  // the index of each shard's first image
  std::vector<std::unique_ptr<Mapping>> shards_;
};

std::unique_ptr<Mapping> map_shard(const std::string& path, const PackedShard& shard) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw DataError(path + ": cannot open packed shard (" + std::strerror(errno) + ")");
  struct stat st {};
  ::fstat(fd, &st);
  if (int64_t(st.st_size) != shard.bytes) {
    ::close(fd);
    throw DataError(path + ": " + std::to_string(st.st_size) + " bytes, the manifest says " + std::to_string(shard.bytes) +
                    " (a truncated shard)");
  }
  auto m = std::make_unique<Mapping>();
  m->count = shard.count;
  m->path = path;
  m->bytes = size_t(shard.bytes);
  if (m->bytes > 0) {
    void* p = ::mmap(nullptr, m->bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw DataError(path + ": cannot map packed shard (" + std::strerror(errno) + ")");
    }
    m->data = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  if (crc32_of(m->data, m->bytes) != shard.crc) throw DataError(path + ": CRC mismatch (the shard is corrupt; pack it again)");
  return m;
}

// A built-in data set's split (uint8 [N, C, H, W] in memory) as a store of images.
class MemoryStore : public ImageStore {
 public:
  MemoryStore(const Dataset& d, std::string name)
      : images_(d.images.contiguous()), labels_(d.labels.to(torch::kInt64).contiguous()), name_(std::move(name)) {}
  int64_t size() const override { return images_.size(0); }
  int64_t label(int64_t i) const override { return labels_.data_ptr<int64_t>()[i]; }
  Image image(int64_t i) const override {
    Image im;
    im.channels = images_.size(1), im.height = images_.size(2), im.width = images_.size(3);
    const auto hwc = images_[i].permute({1, 2, 0}).contiguous();
    im.pixels.assign(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
    return im;
  }
  std::string name(int64_t i) const override { return name_ + "#" + std::to_string(i); }

 private:
  torch::Tensor images_, labels_;
  std::string name_;
};

// The images [begin, end) of `store`, packed into one shard's bytes by `workers` threads.
std::string pack_shard(const ImageStore& store, int64_t begin, int64_t end, const PackOptions& opt) {
  const int64_t n = end - begin, per = opt.side * opt.side * opt.channels;
  std::string bytes(size_t(n * (per + int64_t(sizeof(int64_t)))), '\0');
  std::atomic<int64_t> next{0};
  std::string error;
  std::mutex error_mutex;
  auto work = [&] {
    for (int64_t i; (i = next.fetch_add(1)) < n;) {
      try {
        const Image square = center_square(store.image(begin + i), opt.side);
        std::memcpy(&bytes[size_t(i * per)], square.pixels.data(), size_t(per));
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (error.empty()) error = e.what();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int64_t w = 0; w < std::max<int64_t>(1, opt.workers); ++w) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  if (!error.empty()) throw DataError(error);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = store.label(begin + i);
    std::memcpy(&bytes[size_t(n * per + i * int64_t(sizeof label))], &label, sizeof label);
  }
  return bytes;
}

}  // namespace

std::string format_pack_manifest(const PackManifest& m) {
  std::ostringstream out;
  out << kMagic << "\nside " << m.side << "\nchannels " << m.channels << "\nclasses " << m.classes.size() << "\n";
  for (const auto& c : m.classes) out << "class " << c << "\n";
  for (const auto& s : m.shards)
    out << "shard " << s.split << " " << s.file << " " << s.count << " " << s.bytes << " " << s.crc << "\n";
  if (m.complete) out << "end\n";
  return out.str();
}

PackManifest read_pack_manifest(const std::string& dir) {
  const std::string path = manifest_path(dir);
  if (!fs::exists(path)) throw DataError(path + ": no such file (pack the images with bll-pack first)");
  std::istringstream in(read_bytes(path));
  auto bad = [&](const std::string& why) { return DataError(path + ": malformed pack manifest (" + why + ")"); };
  std::string line;
  if (!std::getline(in, line) || line != kMagic) throw bad("it does not start with '" + std::string(kMagic) + "'");
  PackManifest m;
  int64_t classes = -1;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string key;
    l >> key;
    if (key == "end") {
      m.complete = true;
      break;
    }
    bool ok = true;
    if (key == "side") ok = bool(l >> m.side) && m.side > 0;
    else if (key == "channels") ok = bool(l >> m.channels) && (m.channels == 1 || m.channels == 3);
    else if (key == "classes") ok = bool(l >> classes) && classes > 0;
    else if (key == "class") {
      std::string name;
      ok = bool(std::getline(l >> std::ws, name)) && !name.empty();
      m.classes.push_back(name);
    } else if (key == "shard") {
      PackedShard s;
      ok = bool(l >> s.split >> s.file >> s.count >> s.bytes >> s.crc) && (s.split == "train" || s.split == "val") &&
           s.file.find('/') == std::string::npos && s.file != ".." && s.count > 0 &&
           s.bytes == s.count * (m.side * m.side * m.channels + int64_t(sizeof(int64_t)));
      m.shards.push_back(s);
    } else {
      ok = false;
    }
    if (!ok) throw bad("line '" + line + "'");
  }
  if (m.side <= 0 || m.channels <= 0 || classes != int64_t(m.classes.size()))
    throw bad("its side, channels or classes are missing");
  return m;
}

std::shared_ptr<const ImageStore> open_packed(const std::string& dir, const std::string& split, PackManifest* manifest) {
  const PackManifest m = read_pack_manifest(dir);
  if (!m.complete) throw DataError(manifest_path(dir) + ": the pack was cut off (run bll-pack again to finish it)");
  auto store = std::make_shared<PackedStore>(m.side, m.channels);
  for (const auto& s : m.shards)
    if (s.split == split) store->add(map_shard((fs::path(dir) / s.file).string(), s));
  if (store->size() == 0) throw DataError(manifest_path(dir) + ": no " + split + " images in the pack");
  if (manifest) *manifest = m;
  return store;
}

namespace {

// The two splits of `train` and `val` (images of opt.channels channels) into `out`.
PackManifest pack_stores(const ImageStore& train, const ImageStore& val, const std::vector<std::string>& classes,
                         const std::string& out, const PackOptions& opt) {
  PackManifest m;
  if (fs::exists(manifest_path(out))) {  // a pack to go on with, or one already finished
    m = read_pack_manifest(out);
    if (m.side != opt.side || m.channels != opt.channels || m.classes != classes)
      throw DataError(manifest_path(out) + ": a pack of other images or sizes is there (side " + std::to_string(m.side) +
                      ", channels " + std::to_string(m.channels) + "); give another folder or remove it");
    for (const auto& s : m.shards) map_shard((fs::path(out) / s.file).string(), s);  // each still whole
    if (m.complete) return m;
  } else {
    fs::create_directories(out);
    m.side = opt.side, m.channels = opt.channels, m.classes = classes;
  }
  for (const auto* split : {"train", "val"}) {
    const ImageStore& images = std::string(split) == "train" ? train : val;
    const int64_t shards = (images.size() + opt.shard_images - 1) / opt.shard_images;
    const int64_t done = std::count_if(m.shards.begin(), m.shards.end(), [&](const PackedShard& s) { return s.split == split; });
    for (int64_t k = done; k < shards; ++k) {
      const auto start = std::chrono::steady_clock::now();
      const int64_t begin = k * opt.shard_images, end = std::min(images.size(), begin + opt.shard_images);
      char name[32];
      std::snprintf(name, sizeof name, "%s-%05lld.bin", split, (long long)k);
      const std::string bytes = pack_shard(images, begin, end, opt), path = (fs::path(out) / name).string();
      write_atomically(path, bytes);
      const PackedShard shard{split, name, end - begin, int64_t(bytes.size()), crc32_of(bytes)};
      if (crc32_of(read_bytes(path)) != shard.crc) throw DataError(path + ": read back other bytes than were written");
      m.shards.push_back(shard);
      write_atomically(manifest_path(out), format_pack_manifest(m));
      if (opt.progress) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        char line[160];
        std::snprintf(line, sizeof line, "%s shard %lld/%lld: images %lld-%lld of %lld, %.0f images/s", split,
                      (long long)k + 1, (long long)shards, (long long)begin, (long long)end - 1, (long long)images.size(),
                      double(end - begin) / std::max(s, 1e-9));
        opt.progress(line);
      }
    }
  }
  m.complete = true;
  write_atomically(manifest_path(out), format_pack_manifest(m));
  return m;
}

}  // namespace

PackManifest pack_image_folder(const std::string& in, const std::string& out, const PackOptions& opt) {
  const ImageFolders folders = list_image_folders(in);
  return pack_stores(*folder_store(folders.train, opt.channels), *folder_store(folders.val, opt.channels),
                     folders.train.classes, out, opt);
}

PackManifest pack_dataset(const DataConfig& config, const std::string& out, PackOptions opt) {
  const auto shape = known_shape(config);
  const bool builtin = config.dataset == "mnist" || config.dataset == "fashion-mnist" || config.dataset == "cifar10";
  if (!builtin || !shape || shape->sample.size() != 3 || config.task != "classify")
    throw ConfigError("bll-pack --dataset: " + config.dataset + " is not a built-in image data set (mnist, fashion-mnist, cifar10)");
  const int64_t channels = shape->sample[0];
  if (opt.channels != channels)
    throw ConfigError("bll-pack --dataset: " + config.dataset + " has " + std::to_string(channels) + "-channel images, --channels is " +
                      std::to_string(opt.channels));
  const DataSplit split = load_dataset(config);
  std::vector<std::string> classes;
  for (int64_t c = 0; c < split.num_classes; ++c) classes.push_back(std::to_string(c));
  return pack_stores(MemoryStore(split.train, config.dataset + " train"), MemoryStore(split.test, config.dataset + " test"),
                     classes, out, opt);
}

}  // namespace bll
