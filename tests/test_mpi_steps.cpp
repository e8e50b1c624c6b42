// The GPU-grade step, checked on the CPU under mpirun with 2 and 4 ranks (in the test_mpi suite):
// no read back to the host between log points for any method or schedule, the blocking
// collectives time out like every other wait, and a transport torn down while an error unwinds
// does not wait for its peers.
#include <catch2/catch.hpp>

#include <mpi.h>

#include <chrono>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "bll/config.h"
#include "bll/error.h"
#include "bll/host_reads.h"
#include "bll/trainer.h"
#include "bll/transport/grid.h"
#include "bll/transport/mpi.h"
#include "fixtures.h"
#include "identity.h"

using namespace bll;
using Catch::Matchers::Contains;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// (batch, reads so far) before every step of a run: the phases follow one another, each
// starting again at batch 0.
using Reads = std::vector<std::pair<int64_t, int64_t>>;

// Checks that between two steps of a phase the only reads are the statistics' one per log
// point: after training batch t at most one when t + 1 is a multiple of `every`, else none;
// evaluation has none until its end.
void check_reads(const Reads& seen, int64_t every, const std::string& what) {
  int phase = 0;
  for (size_t i = 1; i < seen.size(); ++i) {
    const auto [t0, r0] = seen[i - 1];
    const auto [t1, r1] = seen[i];
    if (t1 < t0) {  // the next phase (training, then evaluation)
      ++phase;
      continue;
    }
    // At most one: a rank whose blocks have no statistics of their own (bp without the
    // output block) has nothing to read.
    const int64_t allowed = phase == 0 && t1 > t0 && (t0 + 1) % every == 0 ? 1 : 0;
    INFO(what << ": phase " << phase << ", from batch " << t0 << " to " << t1);
    CHECK(r1 - r0 >= 0);
    CHECK(r1 - r0 <= allowed);
  }
  CHECK(phase >= 1);  // an evaluation followed
}

}  // namespace

TEST_CASE("steps: no method or schedule reads back to the host between log points") {
  auto t = test::world();
  const auto data = test::shared_fixture(*t);
  const int64_t every = 4;
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"bll stream", {}},
      {"bll twin feedback", {"loss.feedback=twin"}},
      {"bll gradient feedback", {"loss.feedback=gradient"}},
      {"bp gpipe", {"train.method=bp", "train.schedule=gpipe", "train.micro_batches=2"}},
      {"bp 1f1b", {"train.method=bp", "train.schedule=1f1b", "train.micro_batches=4"}},
      {"fa", {"train.method=fa"}},
      {"greedy", {"train.method=greedy"}},
      {"predsim", {"train.method=predsim"}},
      {"bll, 2 replicas, sync grads", {"runtime.replicas=2"}},
      {"bll, 2 replicas, sync params", {"runtime.replicas=2", "runtime.sync=params", "runtime.sync_every=3"}},
      {"bp gpipe, 2 replicas", {"train.method=bp", "runtime.replicas=2"}},
  };
  for (const auto& [name, keys] : cases) {
    auto overrides = keys;
    overrides.insert(overrides.end(), {"train.epochs=1", "data.train_limit=384", "data.test_limit=96",
                                       "runtime.log_every=" + std::to_string(every)});
    const Config c =
        parse_config(test::small_config_yaml(data, test::temp_dir("reads") + "/run"), "test", overrides);
    GridTransports grid("mpi", {MPI_COMM_WORLD, locate(MPI_COMM_WORLD), torch::kCPU, c.runtime},
                        int(c.runtime.replicas));
    Reads seen;
    TrainOptions options{false};
    options.before_step = [&](int64_t b) { seen.emplace_back(b, host_reads()); };
    const auto result = run_training(c, grid.view(), options);
    INFO(name);
    REQUIRE(seen.size() > 12);  // 12 training batches of 32, then the evaluation
    check_reads(seen, every, name);
    CHECK(result.epochs.back().train_loss > 0);  // the statistics did come back
  }
}

TEST_CASE("transport: a barrier, a string broadcast and a duplication time out when a rank never comes") {
  auto t = test::world();
  const int r = t->rank();
  MpiOptions opt;
  opt.timeout_s = 0.5;
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);  // the abandoned operations stay on a communicator of their own
  auto quick = make_mpi_transport(comm, opt);
  // Rank 1 stays away until the others have given up, then joins, so that nothing is left open.
  auto late = [&](const std::function<void()>& join, const std::string& what) {
    if (r == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      join();
      return;
    }
    const auto start = Clock::now();
    std::string message;
    try {
      join();
    } catch (const RuntimeError& e) {
      message = e.what();
    }
    INFO(what);
    CHECK_THAT(message, Contains("timed out after") && Contains(what));
    CHECK(seconds_since(start) < 60);  // a liveness bound, far above the 0.5 s
  };
  late([&] { quick->barrier(); }, "a barrier of");
  std::string text;  // empty: one broadcast (of its length), which rank 1 joins late
  // Rank 1 is the root here: the others wait for its message.
  late([&] { quick->broadcast_string(text, 1); }, "broadcast of the length of a string from rank 1");
  late([&] { quick->duplicate(); }, "the duplication of a communicator");
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("transport: torn down while an error unwinds, a transport aborts its queued work at once") {
  // What ~NcclTransport does with streams that cannot drain (the peers' matching operations will
  // not come): it waits up to the timeout in normal teardown, but not while an exception is
  // unwinding, so that the failing rank reaches MPI_Abort in seconds.
  struct Queued {
    bool& aborted;
    double timeout_s;
    ~Queued() {
      drain_or_abort([] { return false; }, [&] { aborted = true; }, timeout_s);
    }
  };
  bool aborted = false;
  const auto start = Clock::now();
  try {
    Queued q{aborted, 600.0};
    throw std::runtime_error("a failure on this rank");
  } catch (const std::runtime_error&) {
  }
  CHECK(aborted);
  CHECK(seconds_since(start) < 60);  // not the 600 s timeout

  // Without an error the work gets its time, then is aborted all the same.
  aborted = false;
  const auto calm = Clock::now();
  { Queued q{aborted, 0.3}; }
  CHECK(aborted);
  CHECK(seconds_since(calm) >= 0.3);
  int drained_after = 0;
  CHECK(drain_or_abort([&] { return ++drained_after >= 3; }, [] { FAIL("aborted work that drained"); }, 600.0));
}
