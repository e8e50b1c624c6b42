// Packed shards (bll-pack, data.dataset: packed): an image folder converted once into shards of
// fixed-size 8-bit images, read through mmap, so that training crops and flips without decoding.
//
// A packed folder holds `MANIFEST` and, per split, shards `train-00000.bin`, ... and
// `val-00000.bin`, ...: each shard is its images (count x side x side x channels bytes, rows of
// interleaved channels) followed by their labels (count int64). The manifest is text:
//   bll-pack 1 / side S / channels C / classes N / class NAME (N lines, in label order) /
//   shard SPLIT FILE COUNT BYTES CRC32 (a line per shard) / end
// A manifest without its `end` line is a pack cut off: bll-pack goes on from it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bll/config.h"
#include "bll/data/image_source.h"

namespace bll {

struct PackedShard {
  std::string split, file;
  int64_t count = 0, bytes = 0;
  uint32_t crc = 0;
};

struct PackManifest {
  int64_t side = 0, channels = 0;
  std::vector<std::string> classes;
  std::vector<PackedShard> shards;
  bool complete = false;  // the `end` line was there
};

// Reads `dir`/MANIFEST; throws DataError naming it when it is missing or malformed.
PackManifest read_pack_manifest(const std::string& dir);
std::string format_pack_manifest(const PackManifest& m);

// Split `split` (train or val) of the complete pack in `dir`, mapped into memory. Every shard's
// size and CRC are checked first: a missing, truncated or corrupt shard is named (DataError).
std::shared_ptr<const ImageStore> open_packed(const std::string& dir, const std::string& split, PackManifest* manifest);

struct PackOptions {
  int64_t side = 64, channels = 3;
  int64_t shard_images = 4096;
  int64_t workers = 2;
  std::function<void(const std::string&)> progress;  // one line per shard written
};

// Packs the image folder `in` (train/ and val/) into `out`: every image's shorter side resized
// to `side` and its centre side x side kept. Shards are written whole (a temporary renamed) and
// read back to check their CRC; the manifest is rewritten after each, so that a pack cut off
// goes on from its last complete shard. Returns the manifest.
PackManifest pack_image_folder(const std::string& in, const std::string& out, const PackOptions& options);

// The same for a built-in image data set (data.dataset mnist, fashion-mnist or cifar10, read from
// data.dir): its training and test images as the pack's train and val splits, classes named
// "0", "1", ...; options.channels must be the set's (1, or 3 for CIFAR-10). Throws ConfigError
// for another data set.
PackManifest pack_dataset(const DataConfig& config, const std::string& out, PackOptions options);

}  // namespace bll
