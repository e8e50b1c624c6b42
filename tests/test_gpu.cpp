// The GPU suite: registered when bll is built with a CUDA libtorch and NCCL, run under mpirun
// with 1 and 2 ranks. Ranks of a node share its GPUs when there are fewer GPUs than ranks; the
// NCCL transport is then tested only where NCCL allows two ranks on one GPU (2.30 and later,
// with NCCL_MULTI_RANK_GPU_ENABLE=1).
#include <catch2/catch.hpp>

#include <c10/cuda/CUDAFunctions.h>
#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>

#include "bll/config.h"
#include "bll/data/sources.h"
#include "bll/device.h"
#include "bll/host_reads.h"
#include "bll/trainer.h"
#include "bll/transport/mpi.h"
#include "bll/transport/nccl.h"
#include "bll/transport/registry.h"
#include "fixtures.h"
#include "identity.h"

using namespace bll;
using Catch::Matchers::Contains;

namespace {

// This rank's place in the world, found once: locate() is collective over the communicator,
// and the helpers below also run on rank 0 alone (for the 1-rank reference run).
const RankLocation& world_location() {
  static const RankLocation where = locate(MPI_COMM_WORLD);
  return where;
}

// A configuration on the GPU with `transport`; the ranks of a node share GPUs as they must.
Config gpu_config(const std::string& data, const std::string& transport, const std::vector<std::string>& extra = {}) {
  const RankLocation& where = world_location();
  const int64_t gpus = std::max<int64_t>(1, torch::cuda::device_count());
  const int64_t share = (where.local_ranks + gpus - 1) / gpus;
  std::vector<std::string> keys{"runtime.device=cuda", "runtime.transport=" + transport,
                                "runtime.ranks_per_gpu=" + std::to_string(share), "runtime.deterministic=true",
                                "data.train_limit=500", "data.test_limit=250", "train.epochs=1"};
  keys.insert(keys.end(), extra.begin(), extra.end());
  return parse_config(test::small_config_yaml(data, ""), "test", keys);
}

std::unique_ptr<Transport> open(const Config& c, MPI_Comm comm = MPI_COMM_WORLD) {
  RankLocation where = locate(comm);
  const RankLocation& world = world_location();
  where.local_rank = world.local_rank, where.local_ranks = world.local_ranks;  // the GPU of this rank
  const torch::Device device = select_device(c.runtime, where);
  prepare_device(c.runtime, device);
  return make_transport(c.runtime.transport, {comm, where, device, c.runtime});
}

torch::Device device_of(const Config& c) {
  return select_device(c.runtime, world_location());
}

// Transports to test here: mpi always; nccl where NCCL can run this many ranks on these GPUs.
std::vector<std::string> transports() {
  const RankLocation& where = world_location();
  const bool shared = where.local_ranks > torch::cuda::device_count();
  const char* opt_in = std::getenv("NCCL_MULTI_RANK_GPU_ENABLE");
  const std::string v = nccl_version();
  const bool multi_rank_gpu = (v.rfind("2.", 0) != 0 || std::stoi(v.substr(2)) >= 30) && opt_in && opt_in == std::string("1");
  if (shared && !multi_rank_gpu) {
    if (where.rank == 0) WARN("NCCL " << v << " cannot put " << where.local_ranks << " ranks on "
                                      << int(torch::cuda::device_count()) << " GPU(s): nccl cases skipped");
    return {"mpi"};
  }
  return {"mpi", "nccl"};
}

std::string shared_fixture() {
  auto t = make_mpi_transport(MPI_COMM_WORLD);
  return test::shared_fixture(*t);
}

}  // namespace

// Every transport, and the mpi transport with its staging on a stream of its own.
std::vector<std::pair<std::string, std::vector<std::string>>> transport_variants() {
  std::vector<std::pair<std::string, std::vector<std::string>>> v;
  for (const auto& name : transports()) v.push_back({name, {}});
  v.push_back({"mpi", {"runtime.mpi_staging=async"}});
  return v;
}

TEST_CASE("gpu: alpha and labels of every dtype make the round trip on every transport") {
  for (const auto& [name, keys] : transport_variants()) {
    const Config c = gpu_config("/unused", name, keys);
    auto t = open(c);
    const auto dev = device_of(c);
    const int r = t->rank(), k = t->size();
    for (auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat16, torch::kFloat64, torch::kInt64,
                       torch::kInt32, torch::kUInt8}) {
      INFO(name << " transport" << (keys.empty() ? "" : ", " + keys.front()) << ", dtype " << c10::toString(dtype));
      const auto on = torch::TensorOptions().device(dev).dtype(dtype);
      // Point to point along the pipeline: rank r sends an alpha-like [B, C, H, W] to r + 1.
      std::vector<WorkPtr> works;
      auto in = torch::empty({8, 4, 7, 7}, on);
      if (r + 1 < k) works.push_back(t->isend(torch::full({8, 4, 7, 7}, r + 1, on), r + 1, 3, "alpha"));
      if (r > 0) works.push_back(t->irecv(in, r - 1, 3, "alpha"));
      for (auto& w : works) w->wait();
      if (r > 0) CHECK(in.eq(torch::full({8, 4, 7, 7}, r, on)).all().item<bool>());
      // Gradients against the pipeline (bp, fa): rank r receives from r + 1 and sends to r - 1.
      works.clear();
      auto grad = torch::empty({8, 4, 7, 7}, on);
      if (r > 0) works.push_back(t->isend(torch::full({8, 4, 7, 7}, r + 1, on), r - 1, 4, "gradient"));
      if (r + 1 < k) works.push_back(t->irecv(grad, r + 1, 4, "gradient"));
      for (auto& w : works) w->wait();
      if (r + 1 < k) CHECK(grad.eq(torch::full({8, 4, 7, 7}, r + 2, on)).all().item<bool>());
      // Labels from rank 0 to every rank.
      auto labels = r == 0 ? torch::arange(100, on).remainder(10) : torch::zeros({100}, on);
      t->ibroadcast(labels, 0, "labels")->wait();
      CHECK(torch::equal(labels.cpu(), torch::arange(100, on.device(torch::kCPU)).remainder(10)));
    }
    auto sum = torch::full({5}, double(r + 1), torch::TensorOptions().device(dev).dtype(torch::kFloat64));
    t->allreduce_sum(sum);
    CHECK(sum[0].item<double>() == Approx(k * (k + 1) / 2.0));
    t->barrier();
  }
}

// A K-rank run and a 1-rank run over transport `name` end with the same parameters.
void check_identity(const std::string& name, const std::vector<std::string>& keys = {}) {
  const auto data = shared_fixture();
  const Config c = gpu_config(data, name, keys);
  auto t = open(c);
  TrainOptions options{false, device_of(c)};
  const auto r = test::train_alone_and_together(*t, [&] { return open(c, MPI_COMM_SELF); },
                                                c, options);
  if (t->rank() == 0) {
    INFO(name << " transport, " << t->size() << " ranks: max |difference| " << r.worst << ", test top-1 "
              << r.multi.test_top1 << (keys.empty() ? "" : ", " + keys.front()));
    CHECK(r.worst <= 1e-6);
    CHECK(r.multi.test_top1 == Approx(r.single.test_top1));
    CHECK(r.multi.test_top1 > 50.0);
  }
}

TEST_CASE("gpu: K ranks and 1 rank train to the same parameters on the GPU") {
  for (const auto& [name, keys] : transport_variants()) check_identity(name, keys);
}

TEST_CASE("gpu: back-propagation over every transport: K ranks and 1 rank agree") {
  for (const auto& name : transports()) {
    INFO(name << ", bp 1f1b");
    check_identity(name, {"train.method=bp", "train.schedule=1f1b", "train.micro_batches=2"});
  }
}

TEST_CASE("gpu: image batches are made in pinned memory where the device is a GPU") {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    const std::string dir = test::temp_dir("gpu-images");
    test::write_image_folder(dir, 32, 16, 24, 1);
    const std::string yaml = "data: {dataset: folder, dir: " + dir + ", image_size: 16}\n"
                             "model: {type: cnn, widths: [4], blocks: 1}\ntrain: {epochs: 1, batch_size: 8}\n";
    OpenData gpu = open_data(parse_config(yaml, "t", {"runtime.device=cuda"})), cpu = open_data(parse_config(yaml, "t", {}));
    gpu.train->start_epoch(0), cpu.train->start_epoch(0);
    const Batch b = gpu.train->get(0);
    CHECK(b.x.is_pinned());
    CHECK(!cpu.train->get(0).x.is_pinned());
    CHECK(b.x.pin_memory().data_ptr() == b.x.data_ptr());  // the device copy reads it as it is
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("gpu: the GPU run learns what the CPU run learns") {
  const auto data = shared_fixture();
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    auto self = make_mpi_transport(MPI_COMM_SELF);
    auto cpu = parse_config(test::small_config_yaml(data, test::temp_dir("cpu-run") + "/run"), "test",
                            {"data.train_limit=500", "data.test_limit=250", "train.epochs=2"});
    auto gpu = cpu;
    gpu.runtime.device = "cuda";
    gpu.runtime.run_dir = test::temp_dir("gpu-run") + "/run";
    auto bf16 = gpu;
    bf16.runtime.precision = bf16.runtime.message_precision = "bf16";
    bf16.runtime.run_dir = test::temp_dir("gpu-bf16-run") + "/run";
    const torch::Device cuda(torch::kCUDA, 0);
    const auto on_cpu = run_training(cpu, *self, {false});
    const auto on_gpu = run_training(gpu, *self, {false, cuda});
    const auto in_bf16 = run_training(bf16, *self, {false, cuda});
    INFO("test top-1: cpu " << on_cpu.epochs.back().test_top1 << ", gpu " << on_gpu.epochs.back().test_top1
                            << ", gpu bf16 " << in_bf16.epochs.back().test_top1);
    CHECK(std::abs(on_cpu.epochs.back().test_top1 - on_gpu.epochs.back().test_top1) < 5.0);
    CHECK(std::abs(in_bf16.epochs.back().test_top1 - on_gpu.epochs.back().test_top1) < 15.0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("gpu: a wait for a message that never comes times out and names the peer") {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size < 2) return;
  for (const auto& name : transports()) {
    const Config c = gpu_config("/unused", name, {"runtime.timeout_s=1"});
    auto t = open(c);
    const int r = t->rank(), peer = 1 - r;
    WorkPtr w;
    if (r < 2) {  // ranks 0 and 1 each wait for the other, which never sends
      auto buf = torch::empty({16}, torch::TensorOptions().device(device_of(c)));
      // NCCL may already wait in irecv (it connects a pair on first use), so both are checked.
      auto receive = [&] {
        w = t->irecv(buf, peer, 5, "silence");
        w->wait();
      };
      CHECK_THROWS_WITH(receive(), Contains("timed out") && Contains("silence from rank " + std::to_string(peer)));
    }
    MPI_Barrier(MPI_COMM_WORLD);  // both have timed out before either sends
    if (r < 2) {
      if (name == "mpi" && w) {  // complete the abandoned receive so that MPI can finalize
        t->isend(torch::zeros({16}, torch::TensorOptions().device(device_of(c))), peer, 5, "late")->wait();
        w->wait();
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST_CASE("gpu: a training step never waits for the device (CUDA's synchronisation debug mode)") {
  // The counter (tests/test_mpi_steps.cpp) sees bll's own reads; this sees the ones hidden in
  // operators (nonzero, boolean masks, a copy to pageable memory): between log points every
  // synchronisation of a step is an error. On one rank, so that no message is staged.
  const auto data = shared_fixture();
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    for (const std::string method : {"bll", "bp", "greedy", "predsim"}) {
      auto self = make_mpi_transport(MPI_COMM_SELF);
      auto c = parse_config(test::small_config_yaml(data, test::temp_dir("sync-debug") + "/run"), "test",
                            {"runtime.device=cuda", "train.method=" + method, "data.train_limit=320",
                             "data.test_limit=64", "train.epochs=1", "runtime.log_every=1000"});
      const int64_t batches = 320 / c.train.batch_size;
      auto& state = c10::cuda::warning_state();
      TrainOptions options{false, torch::Device(torch::kCUDA, 0)};
      // From the second step (the first may tune cuDNN) to the one before the last (the end of
      // the phase reads the statistics).
      options.before_step = [&](int64_t t) {
        state.set_sync_debug_mode(t >= 1 && t + 1 < batches ? c10::cuda::SyncDebugMode::L_ERROR
                                                           : c10::cuda::SyncDebugMode::L_DISABLED);
      };
      std::string error;
      try {
        run_training(c, *self, options);
      } catch (const std::exception& e) {
        error = e.what();
      }
      state.set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
      INFO(method << ": " << error);
      CHECK(error.empty());
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("gpu: a NCCL transport torn down while an error unwinds aborts its queued work at once") {
  // The injected failure of tests/cli_test.sh, over NCCL: a receive that can never complete is
  // queued (from this rank itself, which never sends), then an error unwinds through the
  // transport's destructor. It must abort the communicators, not wait out runtime.timeout_s.
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    const Config c = gpu_config("/unused", "nccl", {"runtime.timeout_s=600", "runtime.ranks_per_gpu=1"});
    const auto start = std::chrono::steady_clock::now();
    try {
      auto t = open(c, MPI_COMM_SELF);
      auto buf = torch::empty({1024}, torch::TensorOptions().device(device_of(c)));
      auto never = t->irecv(buf, 0, 5, "a message nobody sends");
      throw std::runtime_error("a failure on this rank");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()) == "a failure on this rank");
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(s < 60);  // not the 600 s of runtime.timeout_s
  }
  MPI_Barrier(MPI_COMM_WORLD);
}
