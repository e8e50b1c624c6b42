// 1F1B: rank r runs K-1-r forwards to fill the pipeline, then alternates one forward and one
// backward, then drains the backwards. The bubble is GPipe's, (K-1)/(M+K-1), but at most K-r
// micro-batches' activations are alive at once instead of M.
#include <algorithm>

#include "backprop.h"

namespace bll {

std::vector<BackpropOp> one_f_one_b_order(int rank, int ranks, int64_t micro) {
  const int64_t warmup = std::min<int64_t>(ranks - 1 - rank, micro);
  std::vector<BackpropOp> ops;
  for (int64_t m = 0; m < warmup; ++m) ops.push_back({true, m});
  for (int64_t i = 0; i + warmup < micro; ++i) {
    ops.push_back({true, warmup + i});
    ops.push_back({false, i});
  }
  for (int64_t m = micro - warmup; m < micro; ++m) ops.push_back({false, m});
  return ops;
}

namespace {

class OneFOneBSchedule : public BackpropSchedule {
 public:
  using BackpropSchedule::BackpropSchedule;

 protected:
  std::vector<Op> order(int rank, int ranks, int64_t micro) const override {
    return one_f_one_b_order(rank, ranks, micro);
  }
};

}  // namespace

std::unique_ptr<Schedule> make_1f1b_schedule(ScheduleContext context) {
  return std::make_unique<OneFOneBSchedule>(std::move(context));
}

}  // namespace bll
