// Whole runs under mpirun with 2 and 4 ranks, in the same suite as test_mpi.cpp: replicas
// (data x pipeline parallelism), and a run stopped mid-epoch and resumed on K ranks or on 1.
#include <catch2/catch.hpp>

#include <mpi.h>

#include <csignal>
#include <filesystem>

#include "bll/checkpoint.h"
#include "bll/config.h"
#include "bll/error.h"
#include "bll/stop.h"
#include "bll/trainer.h"
#include "bll/transport/grid.h"
#include "bll/transport/mpi.h"
#include "fixtures.h"
#include "identity.h"

using namespace bll;
using Catch::Matchers::Contains;
using test::shared_fixture;
using test::world;

namespace {

// The largest |difference| of this rank's final blocks from replica 0's, over every rank.
double replica_difference(const Grid& grid, const TrainResult& r) {
  double worst = 0;
  for (const auto& [block, state] : r.block_state)
    for (const auto& tensor : state) {
      auto first = tensor.contiguous().clone();  // a message is dense in the standard layout
      grid.replicas->ibroadcast(first, 0, "replica 0's block")->wait();
      if (tensor.numel()) worst = std::max(worst, (tensor - first).abs().max().item<double>());
    }
  auto all = torch::zeros({grid.world.size()}, torch::kFloat64);
  all[grid.world.rank()] = worst;
  grid.world.allreduce_sum(all);
  return all.max().item<double>();
}

}  // namespace

TEST_CASE("replicas: a stage's replicas stay equal every epoch, together see every batch once, and learn") {
  auto t = world();
  const auto data = shared_fixture(*t);
  const int R = 2, S = t->size() / R;
  auto config = [&](std::vector<std::string> keys) {
    keys.push_back("runtime.replicas=" + std::to_string(R));
    return parse_config(test::small_config_yaml(data, test::temp_dir("replicas") + "/run"), "test", keys);
  };
  const auto grads = config({"train.epochs=3"});
  GridTransports transports("mpi", {MPI_COMM_WORLD, locate(MPI_COMM_WORLD), torch::kCPU, grads.runtime}, R);
  const Grid grid = transports.view();
  REQUIRE(grid.pipeline.size() == S);
  REQUIRE(grid.replicas->size() == R);
  CHECK(grid.replica == t->rank() / S);

  // Gradient averaging: the replicas take the same steps, so they never differ.
  const auto r = run_training(grads, grid, {false});
  for (const auto& e : r.epochs) {
    INFO("epoch " << e.epoch);
    CHECK(e.replicas == R);
    CHECK(e.replica_divergence <= 1e-6);
    CHECK(int64_t(e.rank_train_seconds.size()) == t->size());  // every rank of every replica is counted
  }
  CHECK(replica_difference(grid, r) <= 1e-6);
  CHECK(r.epochs.back().test_top1 > 50.0);
  if (t->rank() == 0) {  // one replica of the whole batch: the same up to batch-norm on half batches
    auto self = make_mpi_transport(MPI_COMM_SELF);
    auto one = grads;
    one.runtime.replicas = 1;
    const auto alone = run_training(one, *self, {false});
    CHECK(std::abs(alone.epochs.back().test_top1 - r.epochs.back().test_top1) < 10.0);
  }

  // Parameter averaging only at the end of the epoch: each replica learns from its own shares,
  // so the replicas drift apart (different data), and the end of the epoch makes them one again.
  const auto params = config({"train.epochs=1", "runtime.sync=params", "runtime.sync_every=1000"});
  const auto p = run_training(params, grid, {false});
  CHECK(p.epochs.back().replica_divergence > 1e-4);
  CHECK(replica_difference(grid, p) <= 1e-6);

  // Placement by trial runs in replica 0 alone; every replica takes its choice.
  const auto placed = run_training(config({"train.epochs=1", "runtime.blocks_per_rank=auto"}), grid, {false});
  CHECK(replica_difference(grid, placed) <= 1e-6);
  t->barrier();
}

namespace {

// Every rank compares the blocks it holds; true on every rank when all of them are bit-equal.
bool same_blocks(Transport& t, const TrainResult& a, const TrainResult& b) {
  bool same = a.block_state.size() == b.block_state.size();
  for (const auto& [block, state] : a.block_state)
    for (size_t i = 0; same && i < state.size(); ++i) same = torch::equal(state[i], b.block_state.at(block).at(i));
  auto all = torch::full({1}, int64_t(same ? 0 : 1), torch::kInt64);
  t.allreduce_sum(all);
  return all.item<int64_t>() == 0;
}

// A run of `config` in `run_dir` that one rank asks to stop (as SIGUSR1 would) once it has
// started batch 3 of epoch 2; every rank must end with the agreed stop.
void run_until_stopped(Transport& t, Config config, const std::string& run_dir, int asking_rank) {
  config.runtime.run_dir = run_dir;
  int64_t calls = 0;
  const int64_t spans = config.model.blocks / t.size(), batches = 500 / config.train.batch_size;
  TrainOptions options{false};
  options.before_step = [&](int64_t) {
    if (t.rank() == asking_rank && ++calls == spans * (batches + 3)) request_stop(SIGUSR1);
  };
  int code = 0;
  try {
    run_training(config, t, options);
  } catch (const AgreedError& e) {
    code = e.code();
    CHECK_THAT(e.what(), Contains("stopped on request") && Contains("checkpoint.resume=auto"));
  }
  request_stop(0);
  CHECK(code == kExitStopped);
}

}  // namespace

TEST_CASE("a run stopped mid-epoch and resumed on K ranks or on 1 ends bit-identical to the uninterrupted run") {
  auto t = world();
  const auto data = shared_fixture(*t);
  const std::vector<std::pair<std::string, std::vector<std::string>>> variants{
      {"bll", {}},
      {"bll with augmentation", {"data.hflip=true", "data.crop_padding=2"}},
      {"twin feedback", {"loss.feedback=twin"}},
      {"bp, gpipe, 2 micro-batches", {"train.method=bp", "train.micro_batches=2"}},
      {"image folder", {"data.dataset=folder", "data.dir=" + data + "/folder", "data.image_size=32", "data.hflip=true"}},
      {"packed shards", {"data.dataset=packed", "data.dir=" + data + "/packed", "data.image_size=32", "data.hflip=true"}},
  };
  for (const auto& [label, overrides] : variants) {
    INFO(label << " on " << t->size() << " ranks");
    std::vector<std::string> all{"data.train_limit=500", "data.test_limit=128", "train.epochs=3",
                                 "checkpoint.every_steps=5", "checkpoint.keep=3"};
    all.insert(all.end(), overrides.begin(), overrides.end());
    const Config config = parse_config(test::small_config_yaml(data, ""), "test", all);
    std::string base = t->rank() == 0 ? test::temp_dir("resume") : "";
    t->broadcast_string(base, 0);

    Config whole = config;
    whole.runtime.run_dir = base + "/whole";
    const TrainResult reference = run_training(whole, *t, {false});

    run_until_stopped(*t, config, base + "/cut", t->size() - 1);
    if (t->rank() == 0) std::filesystem::copy(base + "/cut", base + "/cut_for_one", std::filesystem::copy_options::recursive);
    t->barrier();
    Config resumed = config;
    resumed.runtime.run_dir = base + "/cut";
    resumed.checkpoint.resume = "auto";
    resumed.runtime.overwrite = false;  // going on, not starting over
    // It goes on from the stop's checkpoint (in epoch 2): its first step is the batch after the
    // saved one, and it runs the epochs left, not the whole run again.
    std::string newest = t->rank() == 0 ? list_checkpoints(base + "/cut").front() : "";
    t->broadcast_string(newest, 0);
    const Manifest saved = read_manifest(newest);
    CHECK((saved.reason == "SIGUSR1" || saved.reason == "stop_request"));
    CHECK(saved.epoch == 1);
    int64_t first_batch = -1;
    TrainOptions watching{false};
    watching.before_step = [&](int64_t batch) { if (first_batch < 0) first_batch = batch; };
    const TrainResult again = run_training(resumed, *t, watching);
    // 0-based: the saved batch is the last one trained (a stop may land on an epoch's last batch).
    CHECK(first_batch == saved.batch % saved.batches_per_epoch);
    REQUIRE(int64_t(again.epochs.size()) == saved.epochs - saved.epoch);
    CHECK(again.epochs.front().epoch == saved.epoch + 1);  // records count epochs from 1
    CHECK(same_blocks(*t, reference, again));
    CHECK(again.epochs.back().test_top1 == reference.epochs.back().test_top1);

    if (t->rank() == 0) {  // the K-rank checkpoint, resumed by one rank holding every block
      auto self = make_mpi_transport(MPI_COMM_SELF);
      Config alone = whole;
      alone.runtime.run_dir = base + "/whole_one";
      const TrainResult one = run_training(alone, *self, {false});
      resumed.runtime.run_dir = base + "/cut_for_one";
      const TrainResult one_again = run_training(resumed, *self, {false});
      CHECK(same_blocks(*self, one, one_again));
    }
    t->barrier();
  }
}
