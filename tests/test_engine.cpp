// How a rank computes on the CPU: the BLAS library's threads and the layout of image tensors.
#include <catch2/catch.hpp>
#include <dlfcn.h>

#include <sstream>

#include "bll/config.h"
#include "bll/device.h"
#include "bll/learner.h"
#include "bll/models/model.h"
#include "bll/runtime.h"
#include "fixtures.h"

using namespace bll;

namespace {
Config cnn_config(const std::string& memory_format) {
  return test::small_cnn_config({"runtime.memory_format=" + memory_format});
}
}  // namespace

TEST_CASE("OpenBLAS's own pool gets runtime.blas_threads, and 0 leaves it as it is") {
  using GetThreads = int (*)();
  auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  RuntimeConfig runtime;
  runtime.threads = 1;
  runtime.blas_threads = 1;
  const ThreadSetup set = configure_threads(runtime, 1);
  CHECK(set.threads == 1);
  CHECK(torch::get_num_threads() == 1);
  if (!get) {  // another BLAS: nothing to set
    CHECK(set.blas_threads == -1);
    return;
  }
  CHECK(set.blas_threads == 1);
  CHECK(get() == 1);
  runtime.blas_threads = 0;
  CHECK(configure_threads(runtime, 1).blas_threads == -1);
  CHECK(get() == 1);
}

TEST_CASE("memory_format: auto is channels-last on the CPU and contiguous on a GPU") {
  RuntimeConfig runtime;
  runtime.memory_format = "auto";
  CHECK(memory_format(runtime, torch::kCPU) == at::MemoryFormat::ChannelsLast);
  CHECK(memory_format(runtime, torch::Device(torch::kCUDA, 0)) == at::MemoryFormat::Contiguous);
  runtime.memory_format = "contiguous";
  CHECK(memory_format(runtime, torch::kCPU) == at::MemoryFormat::Contiguous);
  runtime.memory_format = "channels_last";
  CHECK(memory_format(runtime, torch::Device(torch::kCUDA, 0)) == at::MemoryFormat::ChannelsLast);
  const auto x = torch::randn({2, 3, 4, 5});
  CHECK(in_memory_format(x, at::MemoryFormat::ChannelsLast).is_contiguous(at::MemoryFormat::ChannelsLast));
  CHECK(in_memory_format(torch::randn({2, 3}), at::MemoryFormat::ChannelsLast).is_contiguous());
}

TEST_CASE("a channels-last learner keeps its convolutions in that layout and learns as the standard layout does") {
  const auto nhwc = cnn_config("channels_last"), nchw = cnn_config("contiguous");
  BlockLearner a(nhwc, {make_block(nhwc, 1, {1, 28, 28}, 10)}, 10), b(nchw, {make_block(nchw, 1, {1, 28, 28}, 10)}, 10);
  a.start_epoch(0), b.start_epoch(0);
  int64_t convs = 0;
  for (const auto& p : a.blocks()[0]->parameters())
    if (p.dim() == 4) {
      CHECK(p.is_contiguous(at::MemoryFormat::ChannelsLast));
      ++convs;
    }
  CHECK(convs > 0);
  const auto x = torch::randn({8, 4, 14, 14});
  const auto y = torch::randint(0, 10, {8}, torch::kInt64);
  std::vector<BlockStats> sa(4), sb(4);
  for (int step = 0; step < 3; ++step) {
    const auto out_a = a.train_step(x, y, sa), out_b = b.train_step(x, y, sb);
    CHECK(out_a.is_contiguous(at::MemoryFormat::ChannelsLast));
    CHECK(torch::allclose(out_a, out_b, 1e-4, 1e-5));
  }
  CHECK(sa[1].loss == Approx(sb[1].loss).epsilon(1e-5));
  const auto pa = a.blocks()[0]->parameters(), pb = b.blocks()[0]->parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) CHECK(torch::allclose(pa[i], pb[i], 1e-4, 1e-5));
}

TEST_CASE("a learner loaded from a file saved in the other layout keeps its own") {
  const auto nhwc = cnn_config("channels_last"), nchw = cnn_config("contiguous");
  BlockLearner saved(nchw, {make_block(nchw, 1, {1, 28, 28}, 10)}, 10);
  torch::serialize::OutputArchive out;
  saved.save(out);
  std::stringstream bytes;
  out.save_to(bytes);
  BlockLearner loaded(nhwc, {make_block(nhwc, 1, {1, 28, 28}, 10)}, 10);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  loaded.load(in);
  const auto pa = loaded.blocks()[0]->parameters(), pb = saved.blocks()[0]->parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    CHECK(torch::equal(pa[i], pb[i]));
    if (pa[i].dim() == 4) CHECK(pa[i].is_contiguous(at::MemoryFormat::ChannelsLast));
  }
}
