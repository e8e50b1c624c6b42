// Checkpoint files (bll/checkpoint.h): atomic writes, manifests, telling complete from torn,
// the safetensors export; and the configuration check a resume makes.
#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "bll/checkpoint.h"
#include "bll/config.h"
#include "bll/error.h"
#include "bll/stop.h"
#include "fixtures.h"

using namespace bll;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// A checkpoint folder with two files and their manifest.
std::string make_checkpoint(const std::string& run, int64_t step) {
  const std::string dir = (fs::path(checkpoints_dir(run)) / checkpoint_name(step)).string();
  fs::create_directories(dir);
  Manifest m;
  m.step = step, m.batches_per_epoch = 10, m.epochs = 3, m.epoch = (step - 1) / 10, m.batch = (step - 1) % 10 + 1;
  m.blocks = 2, m.reason = "every_steps";
  for (const std::string name : {"span_000.pt", "span_001.pt"}) {
    const std::string bytes = name + " of step " + std::to_string(step);
    write_atomically((fs::path(dir) / name).string(), bytes);
    m.files.push_back({name, bytes.size(), crc32_of(bytes)});
  }
  write_atomically((fs::path(dir) / kManifestName).string(), format_manifest(m));
  return dir;
}

}  // namespace

TEST_CASE("checkpoint: a manifest reads back as written, and a malformed one is refused with its path") {
  const auto run = test::temp_dir("ckpt-manifest");
  const auto dir = make_checkpoint(run, 25);
  const Manifest m = read_manifest(dir);
  CHECK(m.step == 25);
  CHECK(m.epoch == 2);
  CHECK(m.batch == 5);
  CHECK(!m.finished());
  REQUIRE(m.files.size() == 2);
  CHECK(m.find("span_001.pt")->bytes == std::string("span_001.pt of step 25").size());
  CHECK(check_checkpoint(dir).empty());

  write_text(fs::path(dir) / kManifestName, "bll-checkpoint 1\nstep 25\n");  // cut short: no 'end'
  CHECK_THROWS_WITH(read_manifest(dir), Contains("MANIFEST: malformed manifest (no 'end' line)"));
  write_text(fs::path(dir) / kManifestName, "bll-checkpoint 1\nstep 7\nepoch 0\nbatch 5\nbatches_per_epoch 10\nblocks 1\nend\n");
  CHECK_THROWS_WITH(read_manifest(dir), Contains("inconsistent position"));
  for (const std::string name : {"../span_000.pt", "/etc/passwd", "..", "sub/span_000.pt"}) {
    write_text(fs::path(dir) / kManifestName, "bll-checkpoint 1\nstep 25\nfile " + name + " 10 1\nend\n");
    INFO(name);
    CHECK_THROWS_WITH(read_manifest(dir), Contains("MANIFEST: malformed manifest (file '" + name +
                                                   "' is not a file of the checkpoint's own folder)"));
  }
}

TEST_CASE("checkpoint: a torn or corrupt checkpoint is named as such") {
  const auto run = test::temp_dir("ckpt-check");
  const auto whole = make_checkpoint(run, 10), torn = make_checkpoint(run, 20), bad = make_checkpoint(run, 30),
             short_file = make_checkpoint(run, 40);
  fs::remove(fs::path(torn) / kManifestName);
  std::string bytes = read_bytes((fs::path(bad) / "span_001.pt").string());
  bytes[3] ^= 1;
  write_text(fs::path(bad) / "span_001.pt", bytes);
  write_text(fs::path(short_file) / "span_000.pt", "span");
  CHECK(check_checkpoint(whole).empty());
  CHECK_THAT(check_checkpoint(torn), Contains("no MANIFEST (cut off while being written)"));
  CHECK_THAT(check_checkpoint(bad), Contains("span_001.pt: CRC mismatch"));
  CHECK_THAT(check_checkpoint(short_file), Contains("span_000.pt: 4 bytes, the manifest says"));
  const auto all = list_checkpoints(run);
  REQUIRE(all.size() == 4);
  CHECK(fs::path(all.front()).filename() == "step_000000040");  // newest first
}

TEST_CASE("checkpoint: an atomic write that fails leaves the previous file whole and no temporary") {
  const auto dir = test::temp_dir("ckpt-atomic");
  const std::string path = dir + "/span_000.pt";
  write_atomically(path, "first");
  write_atomically(path, "second, longer");
  CHECK(read_bytes(path) == "second, longer");

  // A file-size limit fails the write the way a full disk does (SIGXFSZ ignored, as bll-train does).
  struct rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  auto previous = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string error;
  try {
    write_atomically(path, std::string(100000, 'x'));
  } catch (const RuntimeError& e) {
    error = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, previous);
  CHECK_THAT(error, Contains("checkpoint: cannot write") && Contains(".span_000.pt.tmp") && Contains("File too large"));
  CHECK(read_bytes(path) == "second, longer");
  CHECK(!fs::exists(dir + "/.span_000.pt.tmp"));

  CHECK_THROWS_WITH(write_atomically(dir + "/no/such/folder/x.pt", "x"), Contains("cannot create") && Contains("No such file"));
}

TEST_CASE("checkpoint: safetensors keep names, dtypes, shapes and values") {
  const auto dir = test::temp_dir("ckpt-safetensors");
  NamedTensors tensors{{"block0.weight", torch::randn({3, 4})},
                       {"block0.running_var", torch::rand({4}, torch::kFloat64)},
                       {"block1.num_batches_tracked", torch::tensor({int64_t(17)})},
                       {"block1.empty", torch::zeros({0, 2})}};
  write_safetensors(dir + "/net.safetensors", tensors, {{"step", "12"}});
  const auto back = read_safetensors(dir + "/net.safetensors");
  REQUIRE(back.size() == tensors.size());
  for (size_t i = 0; i < back.size(); ++i) {
    CHECK(back[i].first == tensors[i].first);
    CHECK(torch::equal(back[i].second, tensors[i].second));
  }
  std::string bytes = read_bytes(dir + "/net.safetensors");
  write_text(fs::path(dir) / "cut.safetensors", bytes.substr(0, bytes.size() - 10));
  CHECK_THROWS_WITH(read_safetensors(dir + "/cut.safetensors"), Contains("cut.safetensors: not a safetensors file"));
}

TEST_CASE("checkpoint: a resume compares the keys that decide what is trained, not the runtime") {
  const std::string yaml = "data: {dataset: reversal}\nmodel: {type: mlp, blocks: 2}\ntrain: {epochs: 1}\n";
  const Config a = parse_config(yaml, "a", {});
  CHECK(training_difference(a, parse_config(yaml, "b", {"runtime.threads=3", "checkpoint.every_steps=5"})).empty());
  CHECK(training_difference(a, parse_config(yaml, "b", {"optim.lr=0.5"})) == "key 'optim.lr': 0.001 vs 0.5");
}

TEST_CASE("checkpoint: a resume refuses the runtime keys that change what is computed, and only those") {
  const std::string yaml = "data: {dataset: reversal}\nmodel: {type: mlp, blocks: 2}\ntrain: {epochs: 1}\n";
  const Config a = parse_config(yaml, "a", {});
  for (const std::string o : {"runtime.precision=bf16", "runtime.message_precision=bf16", "runtime.sync=params",
                              "runtime.sync_every=4", "runtime.deterministic=true"}) {
    INFO(o);
    CHECK_THAT(training_difference(a, parse_config(yaml, "b", {o})), Contains("key '" + o.substr(0, o.find('=')) + "'"));
  }
  for (const std::string o :
       {"runtime.threads=3", "runtime.blas_threads=2", "runtime.log_every=7", "runtime.wait=spin",
        "runtime.timeout_s=5", "runtime.keep_freed_memory=false", "runtime.blocks_per_rank=[1,1]",
        "runtime.save_params=false", "runtime.device=cuda", "runtime.ranks_per_gpu=2", "runtime.mpi_staging=async",
        "runtime.memory_format=contiguous", "runtime.trace=true", "runtime.replicas=2", "runtime.progress=on",
        "runtime.run_dir=elsewhere", "checkpoint.keep=5", "checkpoint.resume=auto", "data.on_bad_file=skip"}) {
    INFO(o);
    CHECK(training_difference(a, parse_config(yaml, "b", {o})).empty());
  }
  CHECK(training_difference(a, parse_config(yaml, "b", {"runtime.device=cuda", "runtime.transport=nccl"})).empty());
  // --help says, key by key, which ones a resume may change.
  const auto free = std::count_if(config_schema().begin(), config_schema().end(), [](const KeySpec& k) { return k.free_on_resume; });
  const std::string help = config_help(), mark = "a resume may change it";
  int64_t marked = 0;
  for (size_t at = help.find(mark); at != std::string::npos; at = help.find(mark, at + 1)) ++marked;
  CHECK(marked == free);
  CHECK(free == 23);
}

TEST_CASE("checkpoint: the first stop signal is the one reported, and after it SIGTERM ends the process") {
  request_stop(0);
  install_stop_handlers();
  std::raise(SIGTERM);  // caught: the run stops at an agreed batch
  std::raise(SIGUSR1);  // a later signal changes nothing
  CHECK(stop_requested() == SIGTERM);
  const auto term = std::signal(SIGTERM, SIG_DFL);
  CHECK(term == SIG_DFL);  // a second SIGTERM would end the process at once
  request_stop(0);
  std::signal(SIGUSR1, SIG_DFL);
  std::signal(SIGXFSZ, SIG_DFL);
}
