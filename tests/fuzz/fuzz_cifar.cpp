// libFuzzer target: the CIFAR-10 binary reader. The input is written to a file and read; every
// input must end in images and labels or a bll::Error naming the file.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "bll/data/cifar.h"
#include "bll/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = std::string(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") +
                                  "/bll-fuzz-cifar-" + std::to_string(getpid()) + ".bin";
  std::ofstream(path, std::ios::binary | std::ios::trunc) << std::string(reinterpret_cast<const char*>(data), size);
  try {
    bll::read_cifar10({path});
  } catch (const bll::Error&) {
  }
  return 0;
}
