// Run under mpirun with 2 and 4 ranks. Every rank runs every case in the same order.
#include <catch2/catch.hpp>

#include <mpi.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include "bll/config.h"
#include "bll/error.h"
#include "bll/placement.h"
#include "bll/stop.h"
#include "bll/trainer.h"
#include "bll/transport/grid.h"
#include "bll/transport/mpi.h"
#include "fixtures.h"
#include "identity.h"

using namespace bll;
using Catch::Matchers::Contains;

namespace {

std::unique_ptr<Transport> world() { return make_mpi_transport(MPI_COMM_WORLD); }

// The fixture data set, written once by rank 0 into a folder every rank can read.
using test::shared_fixture;

Config small_config(const std::string& data_dir, const std::string& run_dir, int64_t in_flight) {
  auto c = parse_config(test::small_config_yaml(data_dir, run_dir), "test", {});
  c.train.in_flight = in_flight;
  return c;
}

}  // namespace

TEST_CASE("transport: ring exchange, broadcast, reduction with rank-dependent values") {
  auto t = world();
  const int r = t->rank(), k = t->size();
  auto out = torch::full({1000}, float(r + 1));
  auto in = torch::empty({1000});
  auto recv = t->irecv(in, (r - 1 + k) % k, 7, "ring");
  auto send = t->isend(out, (r + 1) % k, 7, "ring");
  recv->wait();
  send->wait();
  CHECK(in.eq(float((r - 1 + k) % k + 1)).all().item<bool>());

  auto b = r == 0 ? torch::arange(10, torch::kInt64) : torch::zeros({10}, torch::kInt64);
  t->ibroadcast(b, 0, "arange")->wait();
  CHECK(torch::equal(b, torch::arange(10, torch::kInt64)));

  auto s = torch::tensor({double(r), 1.0}, torch::kFloat64);
  t->allreduce_sum(s);
  CHECK(s[0].item<double>() == Approx(k * (k - 1) / 2.0));
  CHECK(s[1].item<double>() == Approx(k));

  std::string text = r == 0 ? "from rank 0" : "";
  t->broadcast_string(text, 0);
  CHECK(text == "from rank 0");
}

TEST_CASE("transport: messages with one tag arrive in the order sent") {
  auto t = world();
  const int r = t->rank(), k = t->size();
  std::vector<WorkPtr> works;
  std::vector<torch::Tensor> got;
  if (r == 0)
    for (int i = 0; i < 5; ++i) works.push_back(t->isend(torch::full({3}, int64_t(i)), k - 1, 9, "seq"));
  if (r == k - 1)
    for (int i = 0; i < 5; ++i) {
      got.push_back(torch::empty({3}, torch::kInt64));
      works.push_back(t->irecv(got.back(), 0, 9, "seq"));
    }
  for (auto& w : works) w->wait();
  for (int i = 0; i < int(got.size()); ++i) CHECK(got[size_t(i)][0].item<int64_t>() == i);
}

TEST_CASE("transport: a wait for a message that never comes times out and names the peer") {
  MpiOptions opt;
  opt.timeout_s = 0.3;
  auto t = make_mpi_transport(MPI_COMM_WORLD, opt);
  const int r = t->rank(), k = t->size();
  if (r == 1) {
    auto buf = torch::empty({4});
    auto w = t->irecv(buf, 0, 31, "nothing");
    CHECK_THROWS_WITH(w->wait(), Contains("timed out") && Contains("nothing from rank 0"));
  }
  t->barrier();
  // Complete the abandoned receive so the job can finalize cleanly.
  if (r == 0 && k > 1) t->isend(torch::zeros({4}), 1, 31, "late")->wait();
  t->barrier();
}

namespace {

// Trains `config` on rank 0 alone (MPI_COMM_SELF, the same code path) and on every rank, and
// checks that parameters, buffers and accuracies agree.
void check_identity(Transport& t, Config config, const std::string& label) {
  const auto r = test::train_alone_and_together(t, [] { return make_mpi_transport(MPI_COMM_SELF); }, config, {false});
  if (t.rank() == 0) {
    INFO(label << " on " << t.size() << " ranks: max |difference| " << r.worst);
    CHECK(r.worst <= 1e-6);
    CHECK(r.multi.test_top1 == Approx(r.single.test_top1));
    CHECK(r.multi.train_top1 == Approx(r.single.train_top1));
  }
}

}  // namespace

TEST_CASE("K ranks and 1 rank train to the same parameters, whatever the batches in flight and placement") {
  auto t = world();
  const auto data = shared_fixture(*t);
  if (t->rank() == 0) {  // the reference learns (chance is 10%)
    auto self = make_mpi_transport(MPI_COMM_SELF);
    const auto r = run_training(small_config(data, test::temp_dir("learns") + "/run", 2), *self, {false});
    CHECK(r.epochs.back().test_top1 > 50.0);
  }
  std::vector<std::pair<int64_t, std::vector<int64_t>>> schedules{{1, {}}, {3, {}}};  // in_flight, placement
  if (t->size() == 2) schedules.push_back({2, {1, 3}});
  for (const auto& [in_flight, blocks_per_rank] : schedules) {
    auto config = small_config(data, "", in_flight);
    config.runtime.blocks_per_rank = blocks_per_rank;
    check_identity(*t, config, "in_flight " + std::to_string(in_flight));
  }
  auto balanced = small_config(data, "", 2);
  balanced.runtime.auto_placement = true;  // placed by measured cost: the parameters do not change
  check_identity(*t, balanced, "blocks_per_rank auto");
}

TEST_CASE("K ranks and 1 rank agree for every model and loss family and feedback and span") {
  auto t = world();
  const auto data = shared_fixture(*t);
  // A training set that is not a multiple of the batch, and a partial last test batch.
  const std::vector<std::pair<std::string, std::vector<std::string>>> variants{
      {"resnet18", {"model.type=resnet18", "model.width=4"}},
      {"resnet50", {"model.type=resnet50", "model.width=2"}},
      {"bernoulli", {"loss.family=bernoulli"}},
      {"poisson", {"loss.family=poisson"}},
      {"forward posterior", {"loss.forward_posterior=true"}},
      {"gradient feedback", {"loss.feedback=gradient"}},
      {"mlp, BLL(2)", {"model.type=mlp", "model.widths=[16,16,16,16,16,16,16]", "model.blocks=8", "loss.span=2"}},
      {"transformer on the reversal task", {"data.dataset=reversal", "model.type=transformer", "model.width=8"}},
      {"autoencoder", {"data.task=autoencode", "model.type=autoencoder", "model.widths=[4,8]", "loss.feedback=gradient"}},
      // Twin feedback over 2 epochs: the twins' snapshot is exchanged at the epoch boundary.
      {"twin feedback", {"loss.feedback=twin", "train.epochs=2"}},
      {"twin feedback, resnet18", {"loss.feedback=twin", "model.type=resnet18", "model.width=4", "train.epochs=2"}},
      // End-to-end back-propagation: gradients travel back rank to rank; micro-batches add up.
      {"bp, gpipe, 1 micro-batch", {"train.method=bp"}},
      {"bp, gpipe, 4 micro-batches", {"train.method=bp", "train.micro_batches=4"}},
      {"bp, 1f1b, 3 micro-batches", {"train.method=bp", "train.schedule=1f1b", "train.micro_batches=3"}},
      {"bp, 1f1b, mlp in 8 blocks", {"train.method=bp", "train.schedule=1f1b", "train.micro_batches=4", "model.type=mlp",
                                     "model.widths=[16,16,16,16,16,16,16]", "model.blocks=8"}},
      {"fa, gpipe, 2 micro-batches", {"train.method=fa", "train.micro_batches=2"}},
      {"fa, 1f1b, resnet18", {"train.method=fa", "train.schedule=1f1b", "train.micro_batches=2", "model.type=resnet18",
                              "model.width=4"}},
      {"greedy", {"train.method=greedy"}},
      {"predsim", {"train.method=predsim"}},
      // bf16: autocast on the CPU, messages rounded to bf16 at every span boundary.
      {"bf16 arithmetic and messages", {"runtime.precision=bf16", "runtime.message_precision=bf16"}},
      // The CPU's default layout is channels-last; the standard one holds too, for bll and bp.
      {"contiguous layout", {"runtime.memory_format=contiguous"}},
      {"contiguous layout, bp", {"runtime.memory_format=contiguous", "train.method=bp", "train.micro_batches=2"}},
      {"twin feedback, transformer",
       {"loss.feedback=twin", "data.dataset=reversal", "model.type=transformer", "model.width=8", "train.epochs=2"}},
  };
  for (const auto& [label, overrides] : variants) {
    std::vector<std::string> all{"data.train_limit=500", "data.test_limit=250", "train.epochs=1"};
    all.insert(all.end(), overrides.begin(), overrides.end());  // a variant's own keys win
    check_identity(*t, parse_config(test::small_config_yaml(data, ""), "test", all), label);
  }
}

TEST_CASE("a start-up failure on rank 0 ends every rank with the same code, reported once") {
  auto t = world();
  const auto c = small_config("/nonexistent/bll-data", test::temp_dir("fail-" + std::to_string(t->rank())), 2);
  try {
    run_training(c, *t, {false});
    FAIL("no error");
  } catch (const AgreedError& e) {
    CHECK(e.code() == kExitData);
    CHECK(e.report == (t->rank() == 0));
    if (t->rank() == 0) CHECK_THAT(e.what(), Contains("/nonexistent/bll-data"));
  }
}

TEST_CASE("more ranks than blocks is a configuration error on every rank") {
  auto t = world();
  auto c = small_config("/unused", test::temp_dir("blocks-" + std::to_string(t->rank())), 2);
  c.model.blocks = 1;
  c.model.split = {};
  try {
    run_training(c, *t, {false});
    FAIL("no error");
  } catch (const AgreedError& e) {
    CHECK(e.code() == kExitUsage);
    CHECK_THAT(e.what(), Contains("model.blocks is 1"));
  }
}

TEST_CASE("bf16 changes the arithmetic and messages, and the network still learns") {
  auto t = world();
  const auto data = shared_fixture(*t);
  if (t->rank() == 0) {
    auto self = make_mpi_transport(MPI_COMM_SELF);
    const std::vector<std::string> common{"data.train_limit=500", "data.test_limit=250", "train.epochs=2"};
    auto run = [&](std::vector<std::string> keys) {
      keys.insert(keys.end(), common.begin(), common.end());
      auto c = parse_config(test::small_config_yaml(data, test::temp_dir("bf16") + "/run"), "test", keys);
      return run_training(c, *self, {false});
    };
    const auto fp32 = run({});
    const auto bf16 = run({"runtime.precision=bf16", "runtime.message_precision=bf16"});
    double moved = 0;
    for (const auto& [block, state] : fp32.block_state)
      for (size_t i = 0; i < state.size(); ++i)
        moved = std::max(moved, (state[i] - bf16.block_state.at(block)[i]).abs().max().item<double>());
    CHECK(moved > 0);  // the keys reach the arithmetic
    CHECK(bf16.epochs.back().test_top1 > 50.0);
    CHECK(std::abs(bf16.epochs.back().test_top1 - fp32.epochs.back().test_top1) < 15.0);
  }
  t->barrier();
}

TEST_CASE("flow control: with a slow last rank, no rank gets more than in_flight batches ahead of the next") {
  auto t = world();
  const auto data = shared_fixture(*t);
  for (int64_t in_flight : {1, 3}) {
    // A narrow MLP: its alpha messages are small enough that MPI sends them eagerly, completing
    // a send before its receive is posted; only the credits hold the ranks back.
    auto c = parse_config(test::small_config_yaml(data, test::temp_dir("slow-" + std::to_string(t->rank())) + "/run"),
                          "test", {"model.type=mlp", "model.widths=[4,4,4]", "data.train_limit=500"});
    c.train.in_flight = in_flight;
    TrainOptions options{false};
    // The last rank is slow: the others would run away without credits. Its first step waits
    // long enough for the rank before it to fill its window even on a loaded machine.
    if (t->rank() == t->size() - 1)
      options.before_step = [](int64_t b) { std::this_thread::sleep_for(std::chrono::milliseconds(b == 0 ? 500 : 10)); };
    const auto r = run_training(c, *t, options);
    const auto& ahead = r.epochs.back().rank_max_ahead;
    REQUIRE(int64_t(ahead.size()) == t->size());
    for (int k = 0; k + 1 < t->size(); ++k) {
      INFO("in_flight " << in_flight << ", rank " << k << " was " << ahead[size_t(k)] << " batches ahead");
      CHECK(ahead[size_t(k)] <= in_flight);
    }
    CHECK(ahead[size_t(t->size() - 2)] == in_flight);  // the rank before the slow one filled its window
    CHECK(ahead.back() == 0);                          // the last rank sends nothing
    const auto& e = r.epochs.back();
    for (int k = 0; k < t->size(); ++k) {
      CHECK(e.rank_compute_seconds[size_t(k)] <= e.rank_train_seconds[size_t(k)]);
      CHECK(e.rank_peak_rss_mb[size_t(k)] > 10.0);  // a process with libtorch loaded holds more than that
    }
    CHECK(e.pipeline_efficiency > 0.0);
    CHECK(e.pipeline_efficiency <= 1.0);
  }
}

TEST_CASE("bp learns, and its schedules differ only in the order of the micro-batches") {
  auto t = world();
  const auto data = shared_fixture(*t);
  if (t->rank() == 0) {
    auto self = make_mpi_transport(MPI_COMM_SELF);
    auto run = [&](const std::string& schedule) {
      auto c = parse_config(test::small_config_yaml(data, test::temp_dir("bp") + "/run"), "test",
                            {"train.method=bp", "train.schedule=" + schedule, "train.micro_batches=4", "train.epochs=2"});
      return run_training(c, *self, {false});
    };
    const auto gpipe = run("gpipe"), one_f_one_b = run("1f1b");
    CHECK(gpipe.epochs.back().test_top1 > 50.0);
    // The same gradients, added up in another order: equal up to rounding.
    for (const auto& [block, state] : gpipe.block_state)
      for (size_t i = 0; i < state.size(); ++i)
        CHECK(torch::allclose(state[i], one_f_one_b.block_state.at(block)[i], 1e-3, 1e-4));
  }
  t->barrier();
}

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
    const TrainResult again = run_training(resumed, *t, {false});
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
