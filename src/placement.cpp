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
  first_.push_back(0);
  if (!blocks_per_rank.empty()) {
    int64_t total = 0;
    for (int64_t n : blocks_per_rank) total += n;
    if (int64_t(blocks_per_rank.size()) != num_ranks || total != num_blocks)
      throw ConfigError("runtime.blocks_per_rank has " + std::to_string(blocks_per_rank.size()) + " entries adding up to " +
                        std::to_string(total) + ", but the job has " + std::to_string(num_ranks) + " ranks and " +
                        std::to_string(num_blocks) + " blocks");
    for (int64_t n : blocks_per_rank) first_.push_back(first_.back() + n);
    return;
  }
  for (int r = 0; r < num_ranks; ++r) {
    const int64_t share = num_blocks / num_ranks + (r < num_blocks % num_ranks ? 1 : 0);
    first_.push_back(first_.back() + share);
  }
}

int Placement::owner(int64_t block) const {
  for (int r = 0; r < num_ranks(); ++r)
    if (block < end_block(r)) return r;
  throw RuntimeError("placement: block " + std::to_string(block) + " out of range");
}

}  // namespace bll
