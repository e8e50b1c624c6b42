#include "bll/auto_placement.h"

#include "bll/host_reads.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "bll/device.h"
#include "bll/error.h"
#include "bll/learner.h"

namespace bll {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kTrialSlack = 0.15;  // plans predicted this close to the best are timed for real
constexpr size_t kMostTrials = 4;
constexpr int kTrialRounds = 2;

// Seconds per training step of each span on rank 0, chaining a batch through them; the first
// span's cost includes loading a batch.
std::vector<double> time_spans(const Config& config, const Shape& sample_shape, int64_t num_classes,
                               BatchSource& train, const TwinCodes* twin, torch::Device device) {
  train.start_epoch(0);
  // Rank 0 also loads every batch: that cost goes with the first span, which it always holds.
  double loading = std::numeric_limits<double>::infinity();
  Batch batch;
  for (int64_t rep = 0; rep < std::min<int64_t>(4, train.num_batches()); ++rep) {
    const auto start = Clock::now();
    batch = train.get(rep);
    batch.x = to_device(batch.x, device), batch.y = to_device(batch.y, device);
    if (rep > 0) loading = std::min(loading, std::chrono::duration<double>(Clock::now() - start).count());
  }
  if (!std::isfinite(loading)) loading = 0;
  torch::Tensor x = batch.x, y = batch.y;
  std::vector<double> costs;
  std::vector<BlockStats> stats(size_t(config.model.blocks));
  for (int64_t k = 0; k < config.model.blocks; k += config.loss.span) {
    std::vector<Block> span;
    for (int64_t j = k; j < std::min(config.model.blocks, k + config.loss.span); ++j) {
      span.push_back(make_block(config, j, sample_shape, num_classes));
      span.back()->to(device);
    }
    BlockLearner learner(config, std::move(span), num_classes, twin);
    learner.start_epoch(0);
    double best = std::numeric_limits<double>::infinity();
    torch::Tensor out;
    for (int rep = 0; rep < 4; ++rep) {
      const auto start = Clock::now();
      out = learner.train_step(x, y, stats);
      if (device.is_cuda()) read_scalar(out.sum());  // start-up timing: wait for the GPU
      if (rep > 0) best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
    }
    costs.push_back(best + (k == 0 ? loading : 0.0));
    x = out;
  }
  return costs;
}

}  // namespace

Placement place_by_cost(const Config& config, Transport& t, const Shape& sample_shape, int64_t num_classes,
                        BatchSource* train, const TwinCodes* twin, torch::Device device, bool print,
                        const PlacementTrial& trial) {
  const int64_t N = config.model.blocks, span = config.loss.span;
  const int K = t.size();
  // Rank 0's plan: the candidates' blocks per rank and predicted loads, then each span's cost.
  std::string plan;
  if (t.rank() == 0) try {
    const auto costs = time_spans(config, sample_shape, num_classes, *train, twin, device);
    std::vector<int64_t> sizes;
    for (int64_t k = 0; k < N; k += span) sizes.push_back(std::min(span, N - k));
    const auto candidates = near_balanced(costs, sizes, K, kTrialSlack, trial ? kMostTrials : 1);
    std::ostringstream s;
    s << candidates.size() << ' ';
    for (const auto& c : candidates) {
      for (auto n : c.blocks_per_rank) s << n << ' ';
      for (auto l : c.load) s << l << ' ';
    }
    for (auto c : costs) s << c << ' ';
    plan = s.str();
  } catch (const std::exception& e) {
    plan = std::string("error ") + e.what();  // every rank stops with it, none waits for a plan
  }
  t.broadcast_string(plan, 0);
  if (plan.rfind("error ", 0) == 0)
    throw AgreedError(kExitRuntime, "runtime.blocks_per_rank auto: timing the blocks failed: " + plan.substr(6),
                      t.rank() == 0);
  std::istringstream in(plan);
  size_t count = 0;
  in >> count;
  std::vector<Balanced> candidates(count);
  for (auto& c : candidates) {
    c.blocks_per_rank.resize(size_t(K)), c.load.resize(size_t(K));
    for (auto& n : c.blocks_per_rank) in >> n;
    for (auto& l : c.load) in >> l;
  }
  std::vector<double> costs;
  for (double c; in >> c;) costs.push_back(c);
  auto show = [](const std::vector<int64_t>& blocks) {
    std::string text = "[";
    for (size_t r = 0; r < blocks.size(); ++r) text += (r ? "," : "") + std::to_string(blocks[r]);
    return text + "]";
  };
  if (print) {
    std::printf("bll-train: runtime.blocks_per_rank auto: ms per training step of each span on rank 0:");
    for (double c : costs) std::printf(" %.1f", c * 1e3);
    std::printf("\n");
  }
  // Plans predicted within kTrialSlack of the best are timed in the pipeline itself, which sees
  // what the warm-up cannot: messages, and ranks slowing each other down on shared cores.
  // Rounds interleave the plans, so that a slow moment of the machine does not pick one; each
  // plan's time is its fastest round.
  size_t chosen = 0;
  if (candidates.size() > 1) {
    std::vector<double> seconds(candidates.size(), std::numeric_limits<double>::infinity());
    for (int round = 0; round < kTrialRounds; ++round)
      for (size_t i = 0; i < candidates.size(); ++i)
        seconds[i] = std::min(seconds[i], trial(Placement(N, K, candidates[i].blocks_per_rank, span)));
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (print) std::printf("  trial %s: %.1f ms per batch\n", show(candidates[i].blocks_per_rank).c_str(), seconds[i] * 1e3);
      if (seconds[i] < seconds[chosen]) chosen = i;
    }
  }
  const Balanced& best = candidates.at(chosen);
  if (print) {
    std::printf("  placed %s, predicted load per rank (ms):", show(best.blocks_per_rank).c_str());
    for (double l : best.load) std::printf(" %.1f", l * 1e3);
    std::printf("\n");
  }
  return agreed(t.rank(), [&] { return Placement(N, K, best.blocks_per_rank, span); });
}

}  // namespace bll
