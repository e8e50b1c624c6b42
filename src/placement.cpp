#include "bll/placement.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <string>

#include "bll/error.h"

namespace bll {

Placement::Placement(int64_t num_blocks, int num_ranks, const std::vector<int64_t>& blocks_per_rank, int64_t span)
    : num_blocks_(num_blocks), span_(span) {
  if (num_ranks < 1) throw RuntimeError("placement: no ranks");
  if (span < 1) throw RuntimeError("placement: span < 1");
  const int64_t spans = (num_blocks + span - 1) / span;
  if (spans < num_ranks) {
    if (span == 1)
      throw ConfigError("model.blocks is " + std::to_string(num_blocks) + " but the job has " +
                        std::to_string(num_ranks) +
                        " ranks: every rank needs at least one block (raise model.blocks or start fewer ranks)");
    throw ConfigError("loss.span " + std::to_string(span) + " groups " + std::to_string(num_blocks) + " blocks into " +
                      std::to_string(spans) + " spans, but the job has " + std::to_string(num_ranks) +
                      " ranks: a span trains on one rank and every rank needs one (start at most " +
                      std::to_string(spans) + " ranks, or lower loss.span)");
  }
  std::vector<int64_t> counts = blocks_per_rank;
  if (counts.empty()) {
    int64_t next_span = 0;
    for (int r = 0; r < num_ranks; ++r) {
      const int64_t take = spans / num_ranks + (r < spans % num_ranks ? 1 : 0);
      counts.push_back(std::min(num_blocks, (next_span + take) * span) - next_span * span);
      next_span += take;
    }
  }
  int64_t total = 0;
  bool every_rank_has_one = true, spans_whole = true;
  for (int64_t n : counts) {
    total += n, every_rank_has_one &= n >= 1;
    spans_whole &= total % span == 0 || total == num_blocks;
  }
  if (int64_t(counts.size()) != num_ranks || total != num_blocks || !every_rank_has_one)
    throw ConfigError("runtime.blocks_per_rank has " + std::to_string(counts.size()) + " entries adding up to " +
                      std::to_string(total) + ", but the job has " + std::to_string(num_ranks) + " ranks and " +
                      std::to_string(num_blocks) + " blocks (each rank needs at least one)");
  if (!spans_whole)
    throw ConfigError("runtime.blocks_per_rank cuts a span of loss.span " + std::to_string(span) +
                      " blocks between two ranks: each rank's first block must be a multiple of " +
                      std::to_string(span));
  first_.push_back(0);
  for (int64_t n : counts) first_.push_back(first_.back() + n);
}

Balanced balance(const std::vector<double>& span_costs, const std::vector<int64_t>& span_sizes, int num_ranks) {
  const size_t S = span_costs.size(), K = size_t(num_ranks);
  if (K < 1 || S < K || span_sizes.size() != S) throw RuntimeError("balance: fewer spans than ranks");
  std::vector<double> prefix(S + 1, 0.0);
  for (size_t i = 0; i < S; ++i) prefix[i + 1] = prefix[i] + span_costs[i];
  // best[k][i]: the smallest possible maximum load of the first i spans on k ranks; cut[k][i]:
  // where the k-th rank's spans begin in that solution.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(K + 1, std::vector<double>(S + 1, inf));
  std::vector<std::vector<size_t>> cut(K + 1, std::vector<size_t>(S + 1, 0));
  best[0][0] = 0;
  for (size_t k = 1; k <= K; ++k)
    for (size_t i = k; i <= S; ++i)
      for (size_t j = i; j-- > k - 1;) {  // the last rank takes spans j..i-1; scan from the shortest
        const double load = std::max(best[k - 1][j], prefix[i] - prefix[j]);
        if (load < best[k][i]) best[k][i] = load, cut[k][i] = j;
      }
  Balanced out;
  std::vector<size_t> starts(K + 1, S);
  for (size_t k = K, i = S; k > 0; --k) starts[k - 1] = cut[k][i], i = cut[k][i];
  for (size_t k = 0; k < K; ++k) {
    int64_t blocks = 0;
    for (size_t s = starts[k]; s < starts[k + 1]; ++s) blocks += span_sizes[s];
    out.blocks_per_rank.push_back(blocks);
    out.load.push_back(prefix[starts[k + 1]] - prefix[starts[k]]);
  }
  return out;
}

namespace {
// Every way to cut spans [first, S) into `ranks` non-empty contiguous groups; calls visit(starts).
void each_split(size_t first, size_t S, size_t ranks, std::vector<size_t>& starts,
                const std::function<void(const std::vector<size_t>&)>& visit) {
  if (ranks == 1) {
    starts.push_back(first);
    visit(starts);
    starts.pop_back();
    return;
  }
  for (size_t end = first + 1; end + ranks - 1 <= S; ++end) {
    starts.push_back(first);
    each_split(end, S, ranks - 1, starts, visit);
    starts.pop_back();
  }
}

double binomial(size_t n, size_t k) {
  double c = 1;
  for (size_t i = 1; i <= k; ++i) c = c * double(n - k + i) / double(i);
  return c;
}
}  // namespace

std::vector<Balanced> near_balanced(const std::vector<double>& span_costs, const std::vector<int64_t>& span_sizes,
                                    int num_ranks, double slack, size_t most, size_t enumerate_limit) {
  const Balanced best = balance(span_costs, span_sizes, num_ranks);
  const size_t S = span_costs.size(), K = size_t(num_ranks);
  if (binomial(S - 1, K - 1) > double(enumerate_limit)) return {best};
  const double bound = *std::max_element(best.load.begin(), best.load.end()) * (1.0 + slack);
  std::vector<std::pair<double, Balanced>> found;
  std::vector<size_t> starts;
  each_split(0, S, K, starts, [&](const std::vector<size_t>& s) {
    Balanced plan;
    for (size_t k = 0; k < K; ++k) {
      const size_t end = k + 1 < K ? s[k + 1] : S;
      int64_t blocks = 0;
      double load = 0;
      for (size_t i = s[k]; i < end; ++i) blocks += span_sizes[i], load += span_costs[i];
      plan.blocks_per_rank.push_back(blocks);
      plan.load.push_back(load);
    }
    const double worst = *std::max_element(plan.load.begin(), plan.load.end());
    if (worst <= bound) found.emplace_back(worst, std::move(plan));
  });
  std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Balanced> out;
  for (auto& f : found)
    if (out.size() < most) out.push_back(std::move(f.second));
  return out;
}

int Placement::owner(int64_t block) const {
  for (int r = 0; r < num_ranks(); ++r)
    if (block < end_block(r)) return r;
  throw RuntimeError("placement: block " + std::to_string(block) + " out of range");
}

}  // namespace bll
