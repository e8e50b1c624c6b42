// Checkpoints on disk: what a checkpoint folder holds, how its files are written so that a crash
// never leaves a half-written file under a final name, and how a reader tells a complete
// checkpoint from a torn one. The trainer's side (when to save, the consistent cut, resuming)
// is in src/checkpoint/; the tools bll-ckpt and bll-eval use this header.
//
//   <run dir>/checkpoints/step_000000300/
//     span_000.pt ...   one per span of loss.span blocks (the unit a rank owns): its blocks,
//                       optimizer state, step count and the epoch's statistics so far; with
//                       runtime.replicas every replica writes its own (span_000.r1.pt, ...)
//     twin.pt           loss.feedback twin: the snapshot of the twins the epoch started with
//     normalization.json  image sets with data.normalize: the statistics the run normalizes with
//     config.yaml       the configuration that trained it
//     MANIFEST          written last, by rank 0, once every rank has reported its files: the
//                       position (step, epoch, batch) and each file's size and CRC-32
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace bll {

struct CheckpointFile {
  std::string name;
  uint64_t bytes = 0;
  uint32_t crc = 0;
};

struct Manifest {
  int64_t step = 0;               // batches trained since the start of the run
  int64_t epoch = 0;              // the epoch training goes on in (0-based)
  int64_t batch = 0;              // and its first batch not yet trained (1 .. batches_per_epoch)
  int64_t batches_per_epoch = 0;
  int64_t epochs = 0;
  int64_t blocks = 0, span = 1;   // model.blocks, loss.span
  int64_t replicas = 1;           // runtime.replicas of the run that saved it
  bool per_replica = false;       // every replica wrote its spans (runtime.replicas > 1)
  std::string reason;             // every_steps | end | the signal that stopped the run
  std::vector<CheckpointFile> files;

  bool finished() const { return step >= epochs * batches_per_epoch; }
  const CheckpointFile* find(const std::string& name) const;
};

constexpr const char* kManifestName = "MANIFEST";

// "step_000000300"; its folder under <run dir>/checkpoints.
std::string checkpoint_name(int64_t step);
std::string checkpoints_dir(const std::string& run_dir);
// The file a span's state goes to (first block of the span; replica when per_replica).
std::string span_file_name(int64_t first_block, int64_t replica, bool per_replica);

// CRC-32 (zlib's) of a byte string.
uint32_t crc32_of(const std::string& bytes);
uint32_t crc32_of(const uint8_t* data, size_t size);

// Writes `bytes` to `path` so that `path` is either its old self or all of `bytes`: a temporary
// file beside it, fsync, rename over `path`, fsync of the folder. Throws RuntimeError naming the
// path and the system's reason (a full disk, an unwritable folder); the temporary is removed.
void write_atomically(const std::string& path, const std::string& bytes);
// fsync of a folder, so that a file or folder created, renamed or removed in it survives a crash
// of the machine. Throws RuntimeError naming the folder.
void sync_folder(const std::string& dir);
std::string read_bytes(const std::string& path);  // throws RuntimeError naming the path

std::string format_manifest(const Manifest& m);
// Throws RuntimeError naming the file when it is missing or malformed.
Manifest read_manifest(const std::string& checkpoint_dir);

// Empty when `checkpoint_dir` has a manifest and every file it lists has its size and CRC;
// otherwise why not ("no MANIFEST (cut off while being written)", "span_002.pt: CRC mismatch").
// Reads every file.
std::string check_checkpoint(const std::string& checkpoint_dir);

// The checkpoint folders (step_*) of a run directory, highest step first (complete or not).
std::vector<std::string> list_checkpoints(const std::string& run_dir);

// The checkpoints a path names: itself when it is a checkpoint folder (it has a MANIFEST, or is
// named step_*), else those of the run directory it is (list_checkpoints); empty when neither.
std::vector<std::string> checkpoints_at(const std::string& path);

// Export: the network of a checkpoint (replica 0's spans) as named tensors, every block's
// parameters and buffers by their module paths ("block3.features.0.weight"), blocks in order;
// then, where the run normalized images with statistics it saved, those as "data.mean" and
// "data.std" (bll-eval normalizes with them).
// The checkpoint is checked first (check_checkpoint); throws RuntimeError saying why it cannot be read.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;
inline constexpr const char* kExportedMean = "data.mean";
inline constexpr const char* kExportedStd = "data.std";
NamedTensors checkpoint_network(const std::string& checkpoint_dir);

// The safetensors format (a little-endian 8-byte header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the bytes): readable from Python with
// safetensors.torch.load_file, or with json and numpy alone. Written atomically.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata);
NamedTensors read_safetensors(const std::string& path);

}  // namespace bll
