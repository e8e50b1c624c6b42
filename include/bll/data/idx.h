// Readers and writers for the IDX format (MNIST, Fashion-MNIST), gzip-compressed or raw.
#pragma once

#include <torch/torch.h>

#include <string>

namespace bll {

// Reads an IDX image file (magic 0x00000803) into uint8 [N, 1, rows, cols].
torch::Tensor read_idx_images(const std::string& path);

// Reads an IDX label file (magic 0x00000801) into int64 [N].
torch::Tensor read_idx_labels(const std::string& path);

// Writes uint8 [N, rows, cols] (or [N, 1, rows, cols]) as an IDX image file; gzip when the path
// ends in ".gz". For test fixtures and data conversion.
void write_idx_images(const std::string& path, const torch::Tensor& images);
void write_idx_labels(const std::string& path, const torch::Tensor& labels);

// Reads a whole file, transparently un-gzipping it. Throws DataError naming the file when it is
// missing, unreadable or a truncated gzip stream.
std::string read_file_maybe_gz(const std::string& path);

// Writes bytes, gzip-compressed when the path ends in ".gz".
void write_file_maybe_gz(const std::string& path, const std::string& bytes);

}  // namespace bll
