// Reader for the CIFAR-10 binary format: records of 1 label byte + 3072 pixel bytes
// (R, G, B planes of 32x32).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace bll {

struct LabeledImages {
  torch::Tensor images;  // uint8 [N, C, H, W]
  torch::Tensor labels;  // int64 [N]
};

// Reads and concatenates CIFAR-10 binary files. Throws DataError naming the file when it is
// missing, not a whole number of records, or holds a label outside 0..9.
LabeledImages read_cifar10(const std::vector<std::string>& paths);

// Writes images uint8 [N, 3, 32, 32] and labels as one CIFAR-10 binary file (test fixtures).
void write_cifar10(const std::string& path, const torch::Tensor& images, const torch::Tensor& labels);

}  // namespace bll
