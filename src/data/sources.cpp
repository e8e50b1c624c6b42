// Opening a run's data: the built-in data sets in memory, image folders decoded on the fly.
#include "bll/data/sources.h"

#include "bll/data/dataset.h"
#include "bll/data/folder.h"
#include "bll/error.h"

#include <map>
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
OpenData open_in_memory(const Config& config, int replica, int replicas) {
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

// An image folder, decoded while the pipeline trains. Normalization: the statistics of up to
// 512 evaluation crops of the training split.
OpenData open_folder(const Config& config, int replica, int replicas) {
  OpenData data;
  const ImageFolders folders = load_image_folders(config.data);
  const ImageTransform tf = ImageTransform::of(config.data);
  DataInfo& info = data.info;
  info.n_train = folders.train.size();
  info.n_test = folders.val.size();
  info.num_classes = int64_t(folders.train.classes.size());
  info.sample_shape = {tf.channels, tf.size, tf.size};
  const Normalizer norm = config.data.normalize ? fit_normalizer(folders.train, tf, 512, config.data.workers)
                                                : Normalizer::identity(tf.channels);
  const uint64_t seed = uint64_t(config.train.seed);
  const int64_t batch = config.train.batch_size, replica_batch = batch / replicas;
  data.train = std::make_unique<FolderSource>(folders.train, tf, norm, batch, true, seed, config.data.workers);
  if (replicas > 1) data.train->shard(replica, replicas);
  const Share share = share_of(info.n_test, replica, replicas);
  data.test = std::make_unique<FolderSource>(folders.val.part(share.begin, share.count), tf, norm, replica_batch, false,
                                             seed, config.data.workers);
  return data;
}

// One line per data.dataset (its choices in src/config/config_schema.cpp).
using Opener = OpenData (*)(const Config&, int, int);
const std::map<std::string, Opener>& openers() {
  static const std::map<std::string, Opener> registry = {
      {"mnist", open_in_memory},   {"fashion-mnist", open_in_memory}, {"cifar10", open_in_memory},
      {"reversal", open_in_memory}, {"folder", open_folder},
  };
  return registry;
}

}  // namespace

OpenData open_data(const Config& config, int replica, int replicas) {
  const auto it = openers().find(config.data.dataset);
  if (it == openers().end()) throw ConfigError(config.source + ": key 'data.dataset': no data set '" + config.data.dataset + "'");
  return it->second(config, replica, replicas);
}

}  // namespace bll
