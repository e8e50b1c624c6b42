#include "bll/data/idx.h"

#include <algorithm>

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <vector>

#include "bll/error.h"

namespace bll {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

uint32_t be32(const std::string& b, size_t off) {
  return (uint32_t(uint8_t(b[off])) << 24) | (uint32_t(uint8_t(b[off + 1])) << 16) |
         (uint32_t(uint8_t(b[off + 2])) << 8) | uint32_t(uint8_t(b[off + 3]));
}

void put_be32(std::string& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(char((v >> s) & 0xff));
}

// Parses the IDX header, checks magic and payload size, and returns the dimensions.
std::vector<int64_t> parse_idx(const std::string& path, const std::string& bytes, int want_ndim) {
  if (bytes.size() < 4) throw DataError(path + ": file too short for an IDX header (" + std::to_string(bytes.size()) + " bytes)");
  const uint32_t magic = be32(bytes, 0);
  const uint32_t want_magic = 0x00000800u | uint32_t(want_ndim);
  if (magic != want_magic) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%08x", magic);
    char want[32];
    std::snprintf(want, sizeof want, "0x%08x", want_magic);
    throw DataError(path + ": bad magic number " + hex + " (expected " + want + ", an IDX " +
                    (want_ndim == 1 ? "label" : "image") + " file of unsigned bytes)");
  }
  const size_t header = 4 + 4 * size_t(want_ndim);
  if (bytes.size() < header) throw DataError(path + ": truncated IDX header");
  std::vector<int64_t> dims;
  const size_t have = bytes.size() - header;
  uint64_t payload = 1;
  bool overflow = false;  // dimensions of up to 2^32 - 1 each can multiply past 64 bits
  for (int d = 0; d < want_ndim; ++d) {
    dims.push_back(be32(bytes, 4 + 4 * size_t(d)));
    overflow |= __builtin_mul_overflow(payload, uint64_t(dims.back()), &payload);
  }
  if (overflow && std::find(dims.begin(), dims.end(), 0) == dims.end())
    throw DataError(path + ": truncated: the header's dimensions promise more than 2^64 data bytes");
  if (overflow) payload = 0;  // a zero dimension: nothing
  if (have < payload)
    throw DataError(path + ": truncated: header promises " + std::to_string(payload) + " data bytes, file has " +
                    std::to_string(have));
  if (have > payload)
    throw DataError(path + ": " + std::to_string(have - payload) + " unexpected bytes after the data");
  return dims;
}

}  // namespace

std::string read_file_maybe_gz(const std::string& path) {
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw DataError(path + ": cannot open (missing or unreadable)");
  }
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DataError(path + ": cannot open");
  std::string out;
  std::vector<char> buf(1 << 16);  // a chunk; a larger one is zero-filled on every call for nothing
  for (;;) {
    const int n = gzread(f, buf.data(), unsigned(buf.size()));
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(f, &err);
      gzclose(f);
      throw DataError(path + ": corrupt or truncated gzip data (" + msg + ")");
    }
    if (n == 0) break;
    out.append(buf.data(), size_t(n));
  }
  // A gzip stream cut short reads as a clean end of file with some zlib versions; ask explicitly.
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  if (err != Z_OK && err != Z_STREAM_END) {
    std::string m = msg;
    gzclose(f);
    throw DataError(path + ": corrupt or truncated gzip data (" + m + ")");
  }
  if (gzclose(f) != Z_OK) throw DataError(path + ": corrupt or truncated gzip data");
  return out;
}

void write_file_maybe_gz(const std::string& path, const std::string& bytes) {
  if (ends_with(path, ".gz")) {
    gzFile f = gzopen(path.c_str(), "wb");
    if (!f) throw DataError(path + ": cannot create");
    const int n = bytes.empty() ? 0 : gzwrite(f, bytes.data(), unsigned(bytes.size()));
    const bool ok = size_t(n) == bytes.size();
    if (gzclose(f) != Z_OK || !ok) throw DataError(path + ": write failed");
    return;
  }
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) throw DataError(path + ": write failed");
}

torch::Tensor read_idx_images(const std::string& path) {
  const std::string bytes = read_file_maybe_gz(path);
  const auto dims = parse_idx(path, bytes, 3);
  auto t = torch::empty({dims[0], 1, dims[1], dims[2]}, torch::kUInt8);
  if (t.numel() > 0) std::memcpy(t.data_ptr<uint8_t>(), bytes.data() + 16, size_t(t.numel()));  // none: no buffer
  return t;
}

torch::Tensor read_idx_labels(const std::string& path) {
  const std::string bytes = read_file_maybe_gz(path);
  const auto dims = parse_idx(path, bytes, 1);
  auto t = torch::empty({dims[0]}, torch::kUInt8);
  if (t.numel() > 0) std::memcpy(t.data_ptr<uint8_t>(), bytes.data() + 8, size_t(t.numel()));
  return t.to(torch::kInt64);
}

void write_idx_images(const std::string& path, const torch::Tensor& images) {
  auto t = images.to(torch::kUInt8).contiguous();
  if (t.dim() == 4) t = t.squeeze(1);
  TORCH_CHECK(t.dim() == 3, "write_idx_images: expected [N, rows, cols]");
  std::string b;
  put_be32(b, 0x00000803u);
  for (int d = 0; d < 3; ++d) put_be32(b, uint32_t(t.size(d)));
  b.append(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), size_t(t.numel()));
  write_file_maybe_gz(path, b);
}

void write_idx_labels(const std::string& path, const torch::Tensor& labels) {
  auto t = labels.to(torch::kUInt8).contiguous();
  std::string b;
  put_be32(b, 0x00000801u);
  put_be32(b, uint32_t(t.size(0)));
  b.append(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), size_t(t.numel()));
  write_file_maybe_gz(path, b);
}

}  // namespace bll
