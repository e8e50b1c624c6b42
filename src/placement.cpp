#include "bll/placement.h"

#include <string>

#include "bll/error.h"

namespace bll {

Placement::Placement(int64_t num_blocks, int num_ranks, const std::vector<int64_t>& blocks_per_rank)
    : num_blocks_(num_blocks) {
  if (num_ranks < 1) throw RuntimeError("placement: no ranks");
  if (num_blocks < num_ranks)
    throw ConfigError("model.blocks is " + std::to_string(num_blocks) + " but the job has " + std::to_string(num_ranks) +
                      " ranks: every rank needs at least one block (raise model.blocks or start fewer ranks)");
  std::vector<int64_t> counts = blocks_per_rank;
  if (counts.empty())
    for (int r = 0; r < num_ranks; ++r) counts.push_back(num_blocks / num_ranks + (r < num_blocks % num_ranks ? 1 : 0));
  int64_t total = 0;
  bool every_rank_has_one = true;
  for (int64_t n : counts) total += n, every_rank_has_one &= n >= 1;
  if (int64_t(counts.size()) != num_ranks || total != num_blocks || !every_rank_has_one)
    throw ConfigError("runtime.blocks_per_rank has " + std::to_string(counts.size()) + " entries adding up to " +
                      std::to_string(total) + ", but the job has " + std::to_string(num_ranks) + " ranks and " +
                      std::to_string(num_blocks) + " blocks (each rank needs at least one)");
  first_.push_back(0);
  for (int64_t n : counts) first_.push_back(first_.back() + n);
}

int Placement::owner(int64_t block) const {
  for (int r = 0; r < num_ranks(); ++r)
    if (block < end_block(r)) return r;
  throw RuntimeError("placement: block " + std::to_string(block) + " out of range");
}

}  // namespace bll
