#include "bll/data/cifar.h"

#include <cstring>

#include "bll/data/idx.h"
#include "bll/error.h"

namespace bll {

namespace {
constexpr int64_t kSide = 32, kChannels = 3, kPixels = kChannels * kSide * kSide, kRecord = 1 + kPixels;
}

LabeledImages read_cifar10(const std::vector<std::string>& paths) {
  std::vector<torch::Tensor> images, labels;
  for (const auto& path : paths) {
    const std::string bytes = read_file_maybe_gz(path);
    if (bytes.empty() || bytes.size() % kRecord != 0)
      throw DataError(path + ": size " + std::to_string(bytes.size()) + " is not a whole number of CIFAR-10 records (" +
                      std::to_string(kRecord) + " bytes each): truncated or not a CIFAR-10 binary file");
    const int64_t n = int64_t(bytes.size()) / kRecord;
    auto img = torch::empty({n, kChannels, kSide, kSide}, torch::kUInt8);
    auto lab = torch::empty({n}, torch::kInt64);
    auto* ip = img.data_ptr<uint8_t>();
    auto* lp = lab.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t label = uint8_t(bytes[size_t(i * kRecord)]);
      if (label > 9)
        throw DataError(path + ": record " + std::to_string(i) + " has label " + std::to_string(label) +
                        " (CIFAR-10 labels are 0..9)");
      lp[i] = label;
      std::memcpy(ip + i * kPixels, bytes.data() + i * kRecord + 1, size_t(kPixels));
    }
    images.push_back(img);
    labels.push_back(lab);
  }
  if (images.empty()) throw DataError("CIFAR-10: no files given");
  return {torch::cat(images), torch::cat(labels)};
}

void write_cifar10(const std::string& path, const torch::Tensor& images, const torch::Tensor& labels) {
  auto img = images.to(torch::kUInt8).contiguous();
  auto lab = labels.to(torch::kUInt8).contiguous();
  TORCH_CHECK(img.dim() == 4 && img.size(1) == kChannels && img.size(2) == kSide && img.size(3) == kSide,
              "write_cifar10: expected [N, 3, 32, 32]");
  std::string b;
  b.reserve(size_t(img.size(0) * kRecord));
  for (int64_t i = 0; i < img.size(0); ++i) {
    b.push_back(char(lab.data_ptr<uint8_t>()[i]));
    b.append(reinterpret_cast<const char*>(img.data_ptr<uint8_t>() + i * kPixels), size_t(kPixels));
  }
  write_file_maybe_gz(path, b);
}

}  // namespace bll
