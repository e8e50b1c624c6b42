// GPipe: every micro-batch forward, then every one backward in reverse; bubble (K-1)/(M+K-1).
#include "backprop.h"

namespace bll {

std::vector<BackpropOp> gpipe_order(int, int, int64_t micro) {
  std::vector<BackpropOp> ops;
  for (int64_t m = 0; m < micro; ++m) ops.push_back({true, m});
  for (int64_t m = micro - 1; m >= 0; --m) ops.push_back({false, m});
  return ops;
}

namespace {

class GPipeSchedule : public BackpropSchedule {
 public:
  using BackpropSchedule::BackpropSchedule;

 protected:
  std::vector<Op> order(int rank, int ranks, int64_t micro) const override { return gpipe_order(rank, ranks, micro); }
};

}  // namespace

std::unique_ptr<Schedule> make_gpipe_schedule(ScheduleContext context) {
  return std::make_unique<GPipeSchedule>(std::move(context));
}

}  // namespace bll
