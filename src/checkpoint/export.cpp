// A checkpoint's network as one file: the blocks' tensors by name, in the safetensors format.
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "bll/checkpoint.h"
#include "bll/data/loader.h"
#include "bll/error.h"

namespace bll {
namespace fs = std::filesystem;
namespace {

// Every tensor of a module's archive, nested modules by their paths.
void collect(torch::serialize::InputArchive& archive, const std::string& prefix, NamedTensors& out) {
  for (const auto& key : archive.keys()) {
    torch::Tensor t;
    if (archive.try_read(key, t)) {
      out.emplace_back(prefix + key, t.to(torch::kCPU).contiguous());
      continue;
    }
    torch::serialize::InputArchive sub;
    if (archive.try_read(key, sub)) collect(sub, prefix + key + ".", out);
  }
}

const std::map<torch::Dtype, std::string>& dtype_names() {
  static const std::map<torch::Dtype, std::string> names = {
      {torch::kFloat32, "F32"}, {torch::kFloat64, "F64"}, {torch::kFloat16, "F16"}, {torch::kBFloat16, "BF16"},
      {torch::kInt64, "I64"},   {torch::kInt32, "I32"},   {torch::kUInt8, "U8"},    {torch::kBool, "BOOL"}};
  return names;
}

}  // namespace

NamedTensors checkpoint_network(const std::string& dir) {
  const std::string why = check_checkpoint(dir);
  if (!why.empty()) throw RuntimeError("checkpoint '" + dir + "': " + why);
  const Manifest m = read_manifest(dir);
  std::map<int64_t, NamedTensors> blocks;
  for (const auto& f : m.files) {
    if (f.name.rfind("span_", 0) != 0 || f.name.find(".r") != std::string::npos) continue;  // replica 0's spans
    const std::string bytes = read_bytes((fs::path(dir) / f.name).string());
    torch::serialize::InputArchive archive;
    try {
      archive.load_from(bytes.data(), bytes.size(), torch::Device(torch::kCPU));
      for (const auto& key : archive.keys()) {
        if (key.rfind("block_", 0) != 0) continue;
        const int64_t k = std::stoll(key.substr(6));
        torch::serialize::InputArchive sub;
        archive.read(key, sub);
        collect(sub, "block" + std::to_string(k) + ".", blocks[k]);
      }
    } catch (const c10::Error& e) {
      throw RuntimeError(dir + "/" + f.name + ": cannot read: " + e.what_without_backtrace());
    }
  }
  if (int64_t(blocks.size()) != m.blocks)
    throw RuntimeError("checkpoint '" + dir + "': holds " + std::to_string(blocks.size()) + " of " +
                       std::to_string(m.blocks) + " blocks");
  NamedTensors out;
  for (auto& [k, tensors] : blocks) out.insert(out.end(), tensors.begin(), tensors.end());
  // The image statistics the run normalized with, so that bll-eval uses them too.
  const fs::path norm_file = fs::path(dir) / kNormalizationFile;
  if (fs::exists(norm_file)) {
    const Normalizer n = Normalizer::load(norm_file.string());
    out.emplace_back(kExportedMean, n.mean);
    out.emplace_back(kExportedStd, n.std);
  }
  return out;
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const auto it = dtype_names().find(t.scalar_type());
    if (it == dtype_names().end()) throw RuntimeError(path + ": tensor " + name + " has an unsupported dtype");
    const uint64_t n = uint64_t(t.numel()) * uint64_t(t.element_size());
    header[name] = {{"dtype", it->second}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string bytes(8, '\0');
  const uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((len >> (8 * i)) & 0xff);
  bytes += text;
  for (const auto& [name, t] : tensors) {
    const auto c = t.contiguous();
    if (c.numel() > 0) bytes.append(static_cast<const char*>(c.data_ptr()), size_t(c.numel()) * size_t(c.element_size()));
  }
  write_atomically(path, bytes);
}

NamedTensors read_safetensors(const std::string& path) {
  const std::string bytes = read_bytes(path);
  auto bad = [&](const std::string& why) { return RuntimeError(path + ": not a safetensors file (" + why + ")"); };
  if (bytes.size() < 8) throw bad("shorter than its header length");
  uint64_t len = 0;
  for (int i = 0; i < 8; ++i) len |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  if (len > bytes.size() - 8) throw bad("the header runs past the end");
  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(bytes.substr(8, len));
  } catch (const nlohmann::json::exception& e) {
    throw bad(e.what());
  }
  const uint64_t base = 8 + len;
  NamedTensors out;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") continue;
    torch::Dtype dtype = torch::kFloat32;
    bool known = false;
    for (const auto& [d, n] : dtype_names())
      if (v.value("dtype", "") == n) dtype = d, known = true;
    if (!known) throw bad(name + ": unknown dtype");
    const auto shape = v.at("shape").get<std::vector<int64_t>>();
    const auto range = v.at("data_offsets").get<std::vector<uint64_t>>();
    auto t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
    const uint64_t n = uint64_t(t.numel()) * uint64_t(t.element_size());
    if (range.size() != 2 || range[1] - range[0] != n || base + range[1] > bytes.size()) throw bad(name + ": bad byte range");
    if (n > 0) std::memcpy(t.data_ptr(), bytes.data() + base + range[0], n);  // an empty tensor has no data pointer
    out.emplace_back(name, t);
  }
  return out;
}

}  // namespace bll
