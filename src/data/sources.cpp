// Opening a run's data: the built-in data sets in memory, image folders decoded on the fly, packed
// shards mapped into memory.
#include "bll/data/sources.h"

#include "bll/data/dataset.h"
#include "bll/data/folder.h"
#include "bll/data/packed.h"
#include "bll/error.h"

#include <map>
#include <optional>
#include <string>

namespace bll {
namespace {

Dataset slice(const Dataset& d, Share s) {
  Dataset out = d;
  out.images = d.images.narrow(0, s.begin, s.count);
  out.labels = d.labels.narrow(0, s.begin, s.count);
  return out;
}

// The built-in data sets, held in memory.
OpenData open_in_memory(const Config& config, int replica, int replicas, const Normalizer*) {
  OpenData data;
  DataInfo& info = data.info;
  DataSplit split = load_dataset(config.data, uint64_t(config.train.seed));
  info.n_train = split.train.size();
  info.n_test = split.test.size();
  info.num_classes = split.num_classes;
  const auto s = split.train.images.sizes();
  info.sample_shape = Shape(s.begin() + 1, s.end());
  info.label_shape = Shape(split.train.labels.sizes().begin() + 1, split.train.labels.sizes().end());
  if (split.train.reconstruct) {  // the target is the input; its size takes the place of the classes
    info.label_shape = info.sample_shape;
    info.num_classes = split.train.images[0].numel();
    info.float_labels = 1;
  }
  const Normalizer norm = normalizer_for(config.data.normalize, split.train);
  const uint64_t seed = uint64_t(config.train.seed);
  const int64_t batch = config.train.batch_size, replica_batch = batch / replicas;
  data.train = std::make_unique<MemorySource>(split.train, norm, batch, true,
                                              Augment{config.data.hflip, config.data.crop_padding}, seed);
  if (replicas > 1) data.train->shard(replica, replicas);
  data.test = std::make_unique<MemorySource>(slice(split.test, share_of(info.n_test, replica, replicas)),
                                             norm, replica_batch, false, Augment{}, seed);
  return data;
}

// Images from stores: this replica's share of every training batch and of the validation
// split, normalized with the statistics of up to 512 evaluation crops of the training split (the
// same numbers on every resume). data.train_limit and test_limit keep evenly spaced images.
OpenData open_images(const Config& config, int replica, int replicas, const Normalizer* saved,
                     std::shared_ptr<const ImageStore> train, std::shared_ptr<const ImageStore> val, int64_t classes) {
  if (config.data.train_limit > 0) train = subset(train, evenly(train->size(), config.data.train_limit));
  if (config.data.test_limit > 0) val = subset(val, evenly(val->size(), config.data.test_limit));
  const ImageTransform tf = ImageTransform::of(config.data);
  OpenData data;
  DataInfo& info = data.info;
  info.n_train = train->size();
  info.n_test = val->size();
  info.num_classes = classes;
  info.sample_shape = {tf.channels, tf.size, tf.size};
  const int64_t workers = config.data.workers;
  Normalizer norm = Normalizer::identity(tf.channels);
  if (config.data.normalize) {
    // The statistics saved with the run (a resume, an export) or given by data.normalization,
    // else fitted to the training images.
    std::string from = "the saved normalization";
    std::optional<Normalizer> given;
    if (saved) given = *saved;
    else if (!config.data.normalization.empty()) given = Normalizer::load(from = config.data.normalization);
    if (given && given->mean.numel() != tf.channels)
      throw DataError(from + ": statistics of " + std::to_string(given->mean.numel()) + " channels, data.channels is " +
                      std::to_string(tf.channels));
    norm = given ? *given : fit_normalizer(train, tf, 512, workers);
    data.image_norm = norm;
  }
  const uint64_t seed = uint64_t(config.train.seed);
  const int64_t batch = config.train.batch_size, replica_batch = batch / replicas;
  const bool skip = config.data.on_bad_file == "skip", pinned = config.runtime.device == "cuda";
  data.train = std::make_unique<ImageSource>(train, tf, norm, batch, true, seed, workers, skip, pinned);
  if (replicas > 1) data.train->shard(replica, replicas);
  const Share share = share_of(info.n_test, replica, replicas);
  std::vector<int64_t> mine(static_cast<size_t>(share.count));
  for (int64_t i = 0; i < share.count; ++i) mine[size_t(i)] = share.begin + i;
  data.test = std::make_unique<ImageSource>(subset(val, mine), tf, norm, replica_batch, false, seed, workers, skip, pinned);
  return data;
}

// An image folder, decoded while the pipeline trains.
OpenData open_folder(const Config& config, int replica, int replicas, const Normalizer* saved) {
  const ImageFolders f = list_image_folders(config.data.dir);
  const int64_t c = config.data.channels;
  return open_images(config, replica, replicas, saved, folder_store(f.train, c), folder_store(f.val, c),
                     int64_t(f.train.classes.size()));
}

// Packed shards (bll-pack), mapped into memory: crops without decoding.
OpenData open_pack(const Config& config, int replica, int replicas, const Normalizer* saved) {
  PackManifest m;
  auto train = open_packed(config.data.dir, "train", &m), val = open_packed(config.data.dir, "val", nullptr);
  if (m.channels != config.data.channels)
    throw DataError(config.data.dir + ": the pack holds " + std::to_string(m.channels) + "-channel images, data.channels is " +
                    std::to_string(config.data.channels));
  return open_images(config, replica, replicas, saved, train, val, int64_t(m.classes.size()));
}

// One line per data.dataset (its choices in src/config/config_schema.cpp).
using Opener = OpenData (*)(const Config&, int, int, const Normalizer*);
const std::map<std::string, Opener>& openers() {
  static const std::map<std::string, Opener> registry = {
      {"mnist", open_in_memory},   {"fashion-mnist", open_in_memory}, {"cifar10", open_in_memory},
      {"reversal", open_in_memory}, {"folder", open_folder},          {"packed", open_pack},
  };
  return registry;
}

}  // namespace

OpenData open_data(const Config& config, int replica, int replicas, const Normalizer* saved) {
  const auto it = openers().find(config.data.dataset);
  if (it == openers().end()) throw ConfigError(config.source + ": key 'data.dataset': no data set '" + config.data.dataset + "'");
  return it->second(config, replica, replicas, saved);
}

}  // namespace bll
