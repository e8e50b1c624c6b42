// The machinery the back-propagation schedules share (train.method bp): each mini-batch is cut
// into train.micro_batches micro-batches; a forward takes a micro-batch's input (from the data,
// or alpha from the rank before), runs this rank's spans keeping their graphs and sends the
// output on (or, on the last rank, computes the loss); a backward takes the gradient of the
// output (from the rank after, or from the loss), back-propagates through the spans and sends the
// gradient of the input back. After every micro-batch's backward each span takes one optimizer
// step. A schedule is only the order of forwards and backwards on each rank.
//
// Within one rank the spans are joined the way two ranks are: the next span's input is the
// previous output, detached, with its gradient handed back by hand, so a 1-rank run computes
// exactly what a K-rank run does. Evaluation streams like BLL's (stream schedule).
#pragma once

#include <vector>

#include "bll/schedules/backprop_order.h"
#include "bll/schedules/schedule.h"

namespace bll {

using Op = BackpropOp;

class BackpropSchedule : public Schedule {
 public:
  explicit BackpropSchedule(ScheduleContext context);

  PhaseTiming train(BatchSource* source, int64_t n_samples, int64_t batch_size, std::vector<BlockStats>& stats,
                    const TrainHooks& hooks) override;
  PhaseTiming eval(BatchSource* source, int64_t n_samples, int64_t batch_size, std::vector<BlockStats>& stats) override;

 protected:
  // This rank's forwards and backwards of one mini-batch of `micro` micro-batches, in order.
  virtual std::vector<Op> order(int rank, int ranks, int64_t micro) const = 0;

 private:
  std::unique_ptr<Schedule> evaluation_;
};

}  // namespace bll
