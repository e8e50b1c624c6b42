// How a rank computes on the CPU: the BLAS library's threads and the layout of image tensors.
#include <catch2/catch.hpp>
#include <dlfcn.h>

#include <cmath>

#include <sstream>

#include "bll/config.h"
#include "bll/device.h"
#include "bll/host_reads.h"
#include "bll/step_stats.h"
#include "bll/learner.h"
#include "bll/models/model.h"
#include "bll/runtime.h"
#include "fixtures.h"

using namespace bll;
using Catch::Matchers::Contains;

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
  a.flush_stats(sa), b.flush_stats(sb);
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

TEST_CASE("step statistics add up on the device and come back in one read per flush") {
  StepStats device(3, torch::kCPU);
  std::vector<BlockStats> stats(3);
  const int64_t before = host_reads();
  for (int i = 0; i < 4; ++i) {
    device.add(1, StepStats::kLoss, {torch::tensor(1.0f), torch::tensor(0.5f), torch::tensor(0.25f)});
    device.add(1, StepStats::kCorrect1, {torch::tensor(int64_t(3)), torch::tensor(int64_t(5))});
    stats[1].batches += 1;
  }
  CHECK(host_reads() == before);  // adding never reads
  device.flush(stats);
  CHECK(host_reads() == before + 1);
  CHECK(stats[1].loss == 4.0);
  CHECK(stats[1].kl == 2.0);
  CHECK(stats[1].pred == 1.0);
  CHECK(stats[1].correct1 == 12.0);
  CHECK(stats[1].correct3 == 20.0);
  CHECK(stats[0].loss == 0.0);
  device.flush(stats);  // nothing new: no read, nothing added twice
  CHECK(host_reads() == before + 1);
  CHECK(stats[1].loss == 4.0);

  // A non-finite loss is named at the flush, with the block and the batches since the last one.
  stats[2].batches = 4;
  for (float v : {1.0f, std::nanf("")}) {
    device.add(2, StepStats::kLoss, {torch::tensor(v), torch::tensor(0.0f), torch::tensor(v)});
    stats[2].batches += 1;
  }
  CHECK_THROWS_WITH(device.flush(stats), Contains("block 2: local loss is nan in batches 5-6 of this epoch") &&
                                             Contains("training diverged; lower optim.lr"));
}
