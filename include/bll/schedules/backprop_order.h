// The order of forwards and backwards that a back-propagation schedule runs on one rank for one
// mini-batch (src/schedules/gpipe.cpp, one_f_one_b.cpp). Public so that the orders themselves are
// tested (tests/test_methods.cpp), not only the parameters they end with.
#pragma once

#include <cstdint>
#include <vector>

namespace bll {

struct BackpropOp {
  bool forward;
  int64_t micro;  // micro-batch index
};

// GPipe: every micro-batch forward, then every one backward in reverse.
std::vector<BackpropOp> gpipe_order(int rank, int ranks, int64_t micro);
// 1F1B: K-1-r forwards to fill the pipeline, then one forward and one backward in turn, then
// the remaining backwards: at most K - r micro-batches alive on rank r.
std::vector<BackpropOp> one_f_one_b_order(int rank, int ranks, int64_t micro);

}  // namespace bll
