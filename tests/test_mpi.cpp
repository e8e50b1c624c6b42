// Run under mpirun with 2 and 4 ranks, with test_mpi_runs.cpp in the same binary. Every rank
// runs every case in the same order: the one binary's order of registration.
#include <catch2/catch.hpp>

#include <mpi.h>

#include <chrono>
#include <thread>

#include "bll/config.h"
#include "bll/error.h"
#include "bll/placement.h"
#include "bll/trainer.h"
#include "bll/transport/mpi.h"
#include "fixtures.h"
#include "identity.h"

using namespace bll;
using Catch::Matchers::Contains;

namespace {

// The fixture data set, written once by rank 0 into a folder every rank can read, and the
// transport over every rank (tests/identity.h).
using test::shared_fixture;
using test::world;

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

TEST_CASE("transport: gradients flow against the pipeline: from rank + 1 to rank - 1") {
  auto t = world();
  const int r = t->rank(), k = t->size();
  std::vector<WorkPtr> works;
  auto grad = torch::zeros({8, 4, 7, 7});
  if (r > 0) works.push_back(t->isend(torch::full({8, 4, 7, 7}, float(r + 1)), r - 1, 4, "gradient"));
  if (r + 1 < k) works.push_back(t->irecv(grad, r + 1, 4, "gradient"));
  for (auto& w : works) w->wait();
  if (r + 1 < k) CHECK(grad.eq(float(r + 2)).all().item<bool>());
  if (r + 1 == k) CHECK(grad.eq(0.0f).all().item<bool>());  // the last rank receives nothing
  t->barrier();
}

namespace {
// Stages every tensor (as the GPU's copies are staged); the first copy completes only once
// `release` is set, the others at once.
struct HeldStager : HostStager {
  bool release = false;
  int copies = 0;
  bool stages(const torch::Tensor&) const override { return true; }
  std::function<bool()> start(const torch::Tensor& from, const torch::Tensor& to) override {
    to.copy_(from);
    const bool held = copies++ == 0;
    return [this, held] { return !held || release; };
  }
};
}  // namespace

TEST_CASE("transport: a staged send is posted once its copy completes, and what follows it waits its turn") {
  auto stager = std::make_shared<HeldStager>();
  MpiOptions opt;
  opt.timeout_s = 120;
  opt.stager = stager;
  auto t = make_mpi_transport(MPI_COMM_WORLD, opt);
  auto control = world()->duplicate();  // the handshake, on a communicator of its own
  const int r = t->rank();
  auto y = torch::full({4}, r == 0 ? 3.0f : 0.0f);
  if (r == 0) {
    auto a = t->isend(torch::full({16}, 1.0f), 1, 5, "a");  // its copy is held
    auto b = t->isend(torch::full({16}, 2.0f), 1, 5, "b");  // copied at once, but issued after a
    auto c = t->ibroadcast(y, 0, "c");                      // a collective, issued after both
    CHECK(!a->test());
    CHECK(!b->test());
    CHECK(!c->test());
    control->irecv(torch::empty({1}), 1, 9, "go")->wait();  // rank 1 saw nothing arrive
    stager->release = true;
    a->wait();
    b->wait();
    c->wait();
  } else if (r == 1) {
    auto first = torch::zeros({16}), second = torch::zeros({16});
    auto a = t->irecv(first, 0, 5, "a"), b = t->irecv(second, 0, 5, "b");
    auto c = t->ibroadcast(y, 0, "c");
    bool arrived = false;
    for (int i = 0; i < 50 && !arrived; ++i) {  // nothing may arrive while rank 0's first copy is held
      arrived = a->test() || b->test();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    CHECK_FALSE(arrived);
    control->isend(torch::ones({1}), 0, 9, "go")->wait();
    a->wait();
    b->wait();
    c->wait();
    CHECK(first.eq(1.0f).all().item<bool>());  // in the order issued
    CHECK(second.eq(2.0f).all().item<bool>());
  } else {
    t->ibroadcast(y, 0, "c")->wait();
  }
  CHECK(y.eq(3.0f).all().item<bool>());
  control->barrier();
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
  MPI_Barrier(MPI_COMM_WORLD);  // not t->barrier(): rank 0 waits longer than t's timeout here
  // Complete the abandoned receive so the job can finalize cleanly.
  if (r == 0 && k > 1) t->isend(torch::zeros({4}), 1, 31, "late")->wait();
  MPI_Barrier(MPI_COMM_WORLD);
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
      // Images decoded from files by a pool of threads while the pipeline trains.
      {"image folder", {"data.dataset=folder", "data.dir=" + data + "/folder", "data.image_size=32", "data.hflip=true",
                        "data.workers=3", "train.epochs=2"}},
      {"packed shards", {"data.dataset=packed", "data.dir=" + data + "/packed", "data.image_size=32", "data.hflip=true",
                         "train.epochs=2"}},
      {"resnet18 with the ImageNet stem, image folder",
       {"data.dataset=folder", "data.dir=" + data + "/folder", "data.image_size=32", "model.type=resnet18",
        "model.width=4", "model.stem=imagenet"}},
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
