// Checkpoint files: atomic writes, the manifest, and telling a complete checkpoint from a torn one.
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bll/checkpoint.h"
#include "bll/error.h"

namespace bll {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw RuntimeError("checkpoint: " + what + " '" + path + "': " + std::strerror(err));
}

}  // namespace

void sync_folder(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) fail(dir, "cannot open folder", errno);
  const int rc = ::fsync(fd), err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) fail(dir, "cannot sync folder", err);  // EINVAL: the file system has no fsync
}

namespace {

const char* kMagic = "bll-checkpoint 1";

}  // namespace

const CheckpointFile* Manifest::find(const std::string& name) const {
  for (const auto& f : files)
    if (f.name == name) return &f;
  return nullptr;
}

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%09lld", (long long)step);
  return buf;
}

std::string checkpoints_dir(const std::string& run_dir) { return (fs::path(run_dir) / "checkpoints").string(); }

std::string span_file_name(int64_t first_block, int64_t replica, bool per_replica) {
  char buf[48];
  if (per_replica && replica > 0) std::snprintf(buf, sizeof buf, "span_%03lld.r%lld.pt", (long long)first_block, (long long)replica);
  else std::snprintf(buf, sizeof buf, "span_%03lld.pt", (long long)first_block);
  return buf;
}

uint32_t crc32_of(const uint8_t* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t at = 0; at < size;) {  // zlib takes a uInt length
    const size_t n = std::min<size_t>(size - at, 1u << 30);
    crc = crc32(crc, data + at, uInt(n));
    at += n;
  }
  return uint32_t(crc);
}

uint32_t crc32_of(const std::string& bytes) {
  return crc32_of(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

void write_atomically(const std::string& path, const std::string& bytes) {
  const fs::path target(path);
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  const std::string tmp = (target.parent_path() / ("." + target.filename().string() + ".tmp")).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(tmp, "cannot create", errno);
  auto abandon = [&](const std::string& what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(tmp, what, err);
  };
  for (size_t at = 0; at < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + at, bytes.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) abandon("cannot write", n < 0 ? errno : ENOSPC);
    at += size_t(n);
  }
  if (::fsync(fd) != 0) abandon("cannot sync", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(tmp, "cannot close", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(path, "cannot rename into place", err);
  }
  sync_folder(dir);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuntimeError("checkpoint: cannot open '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw RuntimeError("checkpoint: cannot read '" + path + "'");
  return s.str();
}

std::string format_manifest(const Manifest& m) {
  std::ostringstream s;
  s << kMagic << "\n"
    << "step " << m.step << "\nepoch " << m.epoch << "\nbatch " << m.batch << "\nbatches_per_epoch "
    << m.batches_per_epoch << "\nepochs " << m.epochs << "\nblocks " << m.blocks << "\nspan " << m.span
    << "\nreplicas " << m.replicas << "\nper_replica " << (m.per_replica ? 1 : 0) << "\nreason " << m.reason << "\n";
  for (const auto& f : m.files) s << "file " << f.name << " " << f.bytes << " " << f.crc << "\n";
  s << "end\n";
  return s.str();
}

Manifest read_manifest(const std::string& checkpoint_dir) {
  const std::string path = (fs::path(checkpoint_dir) / kManifestName).string();
  if (!fs::exists(path)) throw RuntimeError("checkpoint '" + checkpoint_dir + "': no " + kManifestName);
  std::istringstream in(read_bytes(path));
  auto bad = [&](const std::string& why) { return RuntimeError(path + ": malformed manifest (" + why + ")"); };
  std::string line;
  if (!std::getline(in, line) || line != kMagic) throw bad("not a bll checkpoint manifest");
  Manifest m;
  bool ended = false;
  int per_replica = 0;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string key;
    l >> key;
    bool ok = true;
    if (key == "end") {
      ended = true;
      break;
    } else if (key == "file") {
      CheckpointFile f;
      ok = bool(l >> f.name >> f.bytes >> f.crc);
      // A manifest names files of its own folder only: refused before anything is opened.
      if (ok && (f.name.find('/') != std::string::npos || f.name == "." || f.name == ".."))
        throw bad("file '" + f.name + "' is not a file of the checkpoint's own folder");
      m.files.push_back(f);
    } else if (key == "reason") {
      ok = bool(l >> m.reason);
    } else {
      int64_t v = 0;
      ok = bool(l >> v);
      if (key == "step") m.step = v;
      else if (key == "epoch") m.epoch = v;
      else if (key == "batch") m.batch = v;
      else if (key == "batches_per_epoch") m.batches_per_epoch = v;
      else if (key == "epochs") m.epochs = v;
      else if (key == "blocks") m.blocks = v;
      else if (key == "span") m.span = v;
      else if (key == "replicas") m.replicas = v;
      else if (key == "per_replica") per_replica = int(v);
      else throw bad("unknown line '" + line + "'");
    }
    if (!ok) throw bad("line '" + line + "'");
  }
  if (!ended) throw bad("no 'end' line");
  m.per_replica = per_replica != 0;
  if (m.batches_per_epoch < 1 || m.blocks < 1 || m.span < 1 || m.replicas < 1 || m.batch < 0 ||
      m.batch > m.batches_per_epoch || m.step != m.epoch * m.batches_per_epoch + m.batch)
    throw bad("inconsistent position");
  return m;
}

std::string check_checkpoint(const std::string& checkpoint_dir) {
  if (!fs::exists(fs::path(checkpoint_dir) / kManifestName)) return std::string("no ") + kManifestName + " (cut off while being written)";
  Manifest m;
  try {
    m = read_manifest(checkpoint_dir);
  } catch (const Error& e) {
    return e.what();
  }
  for (const auto& f : m.files) {
    const fs::path p = fs::path(checkpoint_dir) / f.name;
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    if (ec) return f.name + ": missing";
    if (size != f.bytes) return f.name + ": " + std::to_string(size) + " bytes, the manifest says " + std::to_string(f.bytes);
    if (crc32_of(read_bytes(p.string())) != f.crc) return f.name + ": CRC mismatch (the file is corrupt)";
  }
  return "";
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints_dir(run_dir), ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name.rfind("step_", 0) == 0 && name.size() == 14) out.push_back(e.path().string());
  }
  std::sort(out.rbegin(), out.rend());  // zero-padded steps: by name is by step
  return out;
}

std::vector<std::string> checkpoints_at(const std::string& path) {
  const fs::path p(path);
  if (fs::exists(p / kManifestName) || p.filename().string().rfind("step_", 0) == 0) return {path};
  return list_checkpoints(path);
}

}  // namespace bll
