#include "bll/data/dataset.h"

#include <filesystem>

#include "bll/data/cifar.h"
#include "bll/data/sequences.h"
#include "bll/data/idx.h"
#include "bll/error.h"

namespace bll {
namespace fs = std::filesystem;

std::string find_data_file(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {name + ".gz", name}) {
    const fs::path p = fs::path(dir) / candidate;
    if (fs::exists(p)) return p.string();
  }
  throw DataError("data.dir '" + dir + "': missing " + name + "[.gz] (scripts/get_data.sh fetches the data sets)");
}

namespace {

Dataset load_idx_pair(const std::string& dir, const std::string& prefix, int64_t num_classes) {
  const std::string img_path = find_data_file(dir, prefix + "-images-idx3-ubyte");
  const std::string lab_path = find_data_file(dir, prefix + "-labels-idx1-ubyte");
  Dataset d{read_idx_images(img_path), read_idx_labels(lab_path)};
  if (d.images.size(0) != d.labels.size(0))
    throw DataError(img_path + " holds " + std::to_string(d.images.size(0)) + " images but " + lab_path +
                    " holds " + std::to_string(d.labels.size(0)) + " labels");
  if (d.size() > 0 && d.labels.max().item<int64_t>() >= num_classes)
    throw DataError(lab_path + ": label " + std::to_string(d.labels.max().item<int64_t>()) + " is out of range 0.." +
                    std::to_string(num_classes - 1));
  return d;
}

std::string cifar_dir(const std::string& dir) {
  const fs::path nested = fs::path(dir) / "cifar-10-batches-bin";
  return fs::exists(nested) ? nested.string() : dir;
}

std::string shape_text(torch::IntArrayRef s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out;
}

Dataset limit(Dataset d, int64_t n) {
  if (n > 0 && n < d.size()) {
    d.images = d.images.narrow(0, 0, n).contiguous();
    d.labels = d.labels.narrow(0, 0, n).contiguous();
  }
  return d;
}

// The autoencoder's inputs and targets (supplement §2.1): each 28x28 image stacked on a 28x28
// patch of the constant 0.2 (51/255 in uint8, exact), 56x28 in all.
Dataset with_uncertainty_patch(Dataset d) {
  if (d.images.size(1) != 1 || d.images.size(2) != 28 || d.images.size(3) != 28)
    throw DataError("data.task autoencode: needs 1x28x28 images");
  d.images = torch::cat({d.images, torch::full_like(d.images, 51)}, 2).contiguous();
  d.reconstruct = true;
  return d;
}

}  // namespace

std::optional<DataShape> known_shape(const DataConfig& config) {
  if (config.dataset == "reversal") return DataShape{{kReversalLength}, kReversalLength};
  if (config.dataset == "folder" || config.dataset == "packed") return std::nullopt;  // the classes are the folder's
  DataShape shape{{1, 28, 28}, 10};  // mnist, fashion-mnist
  if (config.dataset == "cifar10") shape.sample = {3, 32, 32};
  if (config.task == "autoencode") {  // 28x28 stacked on its uncertainty patch (with_uncertainty_patch)
    if (shape.sample != std::vector<int64_t>{1, 28, 28}) return std::nullopt;  // refused when loading
    shape = {{1, 56, 28}, 56 * 28};
  }
  return shape;
}

DataSplit load_dataset(const DataConfig& config, uint64_t seed) {
  if (config.dataset == "reversal")
    return make_reversal_task(config.train_limit > 0 ? config.train_limit : 50000,
                              config.test_limit > 0 ? config.test_limit : 10000, seed);
  if (!fs::is_directory(config.dir))
    throw DataError("data.dir '" + config.dir + "' is not a folder (scripts/get_data.sh " + config.dataset +
                    " puts the data set there)");
  DataSplit s;
  s.name = config.dataset;
  s.num_classes = 10;
  if (config.dataset == "cifar10") {
    const std::string dir = cifar_dir(config.dir);
    std::vector<std::string> train_files;
    for (int i = 1; i <= 5; ++i) train_files.push_back(find_data_file(dir, "data_batch_" + std::to_string(i) + ".bin"));
    auto train = read_cifar10(train_files);
    auto test = read_cifar10({find_data_file(dir, "test_batch.bin")});
    s.train = {train.images, train.labels};
    s.test = {test.images, test.labels};
  } else {
    s.train = load_idx_pair(config.dir, "train", s.num_classes);
    s.test = load_idx_pair(config.dir, "t10k", s.num_classes);
    if (s.train.images.sizes().slice(1) != s.test.images.sizes().slice(1))
      throw DataError("data.dir '" + config.dir + "': train and test images differ in shape");
  }
  s.train = limit(s.train, config.train_limit);
  s.test = limit(s.test, config.test_limit);
  if (config.task == "autoencode") {
    s.train = with_uncertainty_patch(s.train);
    s.test = with_uncertainty_patch(s.test);
  }
  const auto known = known_shape(config);  // what the network was checked against before loading
  if (known && s.train.images.sizes().slice(1) != torch::IntArrayRef(known->sample))
    throw DataError("data.dir '" + config.dir + "': its images are " + shape_text(s.train.images.sizes().slice(1)) +
                    " but data.dataset " + config.dataset + " has " + shape_text(known->sample) + " images");
  if (s.train.size() == 0) throw DataError("data.dir '" + config.dir + "': the training set is empty");
  if (s.test.size() == 0) throw DataError("data.dir '" + config.dir + "': the test set is empty");
  return s;
}

}  // namespace bll
