// Test data made on the spot: small IDX data sets whose classes are easy to tell apart, so a
// few steps of training must raise accuracy far above chance.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "bll/config.h"

namespace bll::test {

// Images [n, 28, 28] of 10 classes: class c lights a 7x7 patch at one of 10 positions, plus
// noise. Labels are round-robin over the classes.
void make_images(int64_t n, uint64_t seed, torch::Tensor& images, torch::Tensor& labels);

// Writes train/t10k IDX files (gzipped) into `dir`, created if needed.
void write_idx_dataset(const std::string& dir, int64_t n_train, int64_t n_test, uint64_t seed);

// Writes CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin) of 32x32 colour images
// made from the same patterns into `dir`; n_train is spread over the five training files.
void write_cifar_dataset(const std::string& dir, int64_t n_train, int64_t n_test, uint64_t seed);

// Writes an image folder (data.dataset: folder) into `dir`: train/ and val/ with one folder per
// class (c0 .. c9), the same patterns scaled to `side` x `side` colour images, every third
// image a PNG, every fifth a grey JPEG, the rest colour JPEGs (all colour JPEGs with `jpeg_only`).
void write_image_folder(const std::string& dir, int64_t n_train, int64_t n_test, int64_t side, uint64_t seed,
                        bool jpeg_only = false);

// A fresh empty folder under the system temp dir, removed with everything in it when the
// process exits (BLL_KEEP_TEST_DIRS=1 keeps it for a look after a failure).
std::string temp_dir(const std::string& name);

// A small CNN (widths 4/8/8, head 16, 4 blocks, seed 3) for unit tests that build blocks and
// learners without data; `overrides` are section.key=value.
Config small_cnn_config(const std::vector<std::string>& overrides = {});

// A YAML config for a small CNN on the fixture data in `dir`.
std::string small_config_yaml(const std::string& dir, const std::string& run_dir);

}  // namespace bll::test
