// Where blocks run: which rank owns which contiguous range of blocks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bll {

// Where a rank runs, for choosing its GPU and for messages.
struct RankLocation {
  int rank = 0;
  int local_rank = 0;   // rank among the ranks on its node
  int local_ranks = 1;  // ranks on its node
  std::string node;     // host name
};

class Placement {
 public:
  // N blocks over K ranks, contiguous: `blocks_per_rank[r]` blocks for rank r when given, else as
  // even as possible (earlier ranks get the extra blocks). Blocks come in spans of `span`
  // consecutive blocks (the last span may be shorter) that train together and so stay on one
  // rank. Throws ConfigError when a rank would have no block, the counts do not match K ranks and
  // N blocks, or a rank boundary cuts a span.
  Placement(int64_t num_blocks, int num_ranks, const std::vector<int64_t>& blocks_per_rank = {}, int64_t span = 1);

  int64_t num_blocks() const { return num_blocks_; }
  int num_ranks() const { return int(first_.size()) - 1; }
  int64_t first_block(int rank) const { return first_[size_t(rank)]; }
  int64_t end_block(int rank) const { return first_[size_t(rank) + 1]; }  // exclusive
  int owner(int64_t block) const;
  // The spans rank `rank` trains (each rank starts at a span boundary; the last span may be short).
  int64_t spans_of(int rank) const { return (end_block(rank) - first_block(rank) + span_ - 1) / span_; }
  bool feeds_pipeline(int rank) const { return rank == 0; }          // reads data
  bool ends_pipeline(int rank) const { return rank == num_ranks() - 1; }  // has the output block

 private:
  int64_t num_blocks_, span_;
  std::vector<int64_t> first_;
};

// Balanced placement (runtime.blocks_per_rank: auto): contiguous spans on `num_ranks` ranks so
// that the largest per-rank sum of `span_costs` is as small as it can be (among equal plans,
// earlier ranks take more spans). `span_sizes[i]` is span i's block count. Returns blocks per rank.
struct Balanced {
  std::vector<int64_t> blocks_per_rank;
  std::vector<double> load;  // predicted cost of each rank
};
Balanced balance(const std::vector<double>& span_costs, const std::vector<int64_t>& span_sizes, int num_ranks);

// The contiguous plans whose predicted largest load is within (1 + slack) of the best, best
// first, at most `most` of them: every plan is scored where there are at most `enumerate_limit`,
// otherwise the one plan balance() gives.
std::vector<Balanced> near_balanced(const std::vector<double>& span_costs, const std::vector<int64_t>& span_sizes,
                                    int num_ranks, double slack, size_t most, size_t enumerate_limit = 256);

}  // namespace bll
