// libFuzzer target: the IDX readers (images and labels), raw and as a .gz file. The input is
// written to a file (the readers take paths, in /dev/shm where there is one) and read both ways; every input must end in a tensor
// or a bll::Error naming the file.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "bll/data/idx.h"
#include "bll/error.h"

namespace {

std::string scratch(const char* suffix) {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/bll-fuzz-idx-" + std::to_string(getpid()) + suffix;
}

void read_all(const std::string& path) {
  try {
    bll::read_idx_images(path);
  } catch (const bll::Error&) {
  }
  try {
    bll::read_idx_labels(path);
  } catch (const bll::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  static const std::string raw = scratch(".idx"), gz = scratch(".idx.gz");
  std::ofstream(raw, std::ios::binary | std::ios::trunc) << bytes;
  read_all(raw);
  // The same bytes as a .gz file: the decompressor's errors (a valid stream decompresses to
  // what the raw file is).
  std::ofstream(gz, std::ios::binary | std::ios::trunc) << bytes;
  read_all(gz);
  return 0;
}
