// Where blocks run: which rank owns which contiguous range of blocks.
#pragma once

#include <cstdint>
#include <vector>

namespace bll {

class Placement {
 public:
  // N blocks over K ranks, contiguous and as even as possible (earlier ranks get the extra
  // blocks). Throws ConfigError when N < K: a rank without a block has nothing to do.
  Placement(int64_t num_blocks, int num_ranks);

  int64_t num_blocks() const { return num_blocks_; }
  int num_ranks() const { return int(first_.size()) - 1; }
  int64_t first_block(int rank) const { return first_[size_t(rank)]; }
  int64_t end_block(int rank) const { return first_[size_t(rank) + 1]; }  // exclusive
  int owner(int64_t block) const;
  bool feeds_pipeline(int rank) const { return rank == 0; }          // reads data
  bool ends_pipeline(int rank) const { return rank == num_ranks() - 1; }  // has the output block

 private:
  int64_t num_blocks_;
  std::vector<int64_t> first_;
};

}  // namespace bll
