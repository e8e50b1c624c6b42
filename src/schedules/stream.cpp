// BLL's free-running pipeline (the `stream` schedule).
//
// Rank 0 reads a batch, broadcasts its labels to every rank and pushes the input through its
// blocks; each rank receives alpha from the rank before it, updates its own blocks at once and
// sends its output on. A rank depends only on earlier ranks (alpha) and rank 0 (labels); it
// never waits for a later rank except for flow control.
//
// Flow control is by credits, not by when a send completes (MPI completes a small send eagerly,
// before its receive is posted): a rank returns a credit to the one before it each time it takes
// a batch's alpha, and a rank sends batch t only once it holds the credit of batch
// t - in_flight. So rank k is at most in_flight batches ahead of rank k+1 and rank 0 at most
// (K-1)·in_flight ahead of the last rank; rank 0 also keeps at most in_flight label broadcasts
// outstanding (a transport that completes a broadcast only when every rank has joined it holds
// rank 0 closer still). Because a block's update depends only on its input and the labels, the result is
// the same for every placement and every in_flight.
#include <chrono>
#include <deque>

#include "bll/device.h"
#include "bll/error.h"
#include "bll/schedules/schedule.h"
#include "waiting.h"

namespace bll {
namespace {

using Clock = ScheduleClock;
constexpr int kTagTrain = 101, kTagEval = 102, kTagCredit = 110;

// A message on its way in: the buffer and the handle that fills it.
struct Incoming {
  torch::Tensor tensor;
  WorkPtr work;
};

torch::Tensor take(Incoming& in, double& wait_s, Tracer* tracer, const char* what) {
  wait_for(*in.work, wait_s, tracer, what);
  return in.tensor;
}

// Keeps at most `limit` handles outstanding; waits for the oldest beyond that.
void bound(std::deque<WorkPtr>& q, size_t limit, double& wait_s, Tracer* tracer = nullptr) {
  while (q.size() > limit) {
    wait_for(*q.front(), wait_s, tracer, "wait for a send");
    q.pop_front();
  }
}

using Step = std::function<torch::Tensor(BlockLearner&, const torch::Tensor&, const torch::Tensor&,
                                         std::vector<BlockStats>&)>;

class StreamSchedule : public Schedule {
 public:
  using Schedule::Schedule;

  PhaseTiming train(BatchSource* source, int64_t n_samples, int64_t batch_size, std::vector<BlockStats>& stats,
                    const TrainHooks& hooks) override {
    auto step = [](BlockLearner& l, const torch::Tensor& x, const torch::Tensor& y, std::vector<BlockStats>& s) {
      return l.train_step(x, y, s);
    };
    return stream(true, source, n_samples, batch_size, stats, step, hooks);
  }

  PhaseTiming eval(BatchSource* source, int64_t n_samples, int64_t batch_size, std::vector<BlockStats>& stats) override {
    auto step = [](BlockLearner& l, const torch::Tensor& x, const torch::Tensor& y, std::vector<BlockStats>& s) {
      return l.eval_step(x, y, s);
    };
    return stream(false, source, n_samples, batch_size, stats, step, {});
  }

 private:
  PhaseTiming stream(bool training, BatchSource* source, int64_t n_samples, int64_t batch_size,
                     std::vector<BlockStats>& stats, const Step& step, const TrainHooks& hooks);
};

PhaseTiming StreamSchedule::stream(bool training, BatchSource* source, int64_t n_samples, int64_t batch_size,
                                   std::vector<BlockStats>& stats, const Step& step, const TrainHooks& hooks) {
  Transport& transport = ctx_.transport;
  const ScheduleOptions& opt = ctx_.options;
  const int rank = transport.rank();
  const bool feeds = ctx_.placement.feeds_pipeline(rank), ends = ctx_.placement.ends_pipeline(rank);
  const int tag = training ? kTagTrain : kTagEval, credit_tag = kTagCredit + tag;
  const int64_t n = num_batches(n_samples, batch_size, training), first = hooks.first;
  auto end = [&] { return hooks.end ? std::min(n, hooks.end()) : n; };
  const int64_t window = opt.in_flight;
  const Shape& in_shape = ctx_.boundary_shapes[size_t(ctx_.placement.first_block(rank))];
  const char* phase = training ? "train" : "eval";
  const auto on_device = torch::TensorOptions().device(opt.device);
  if (feeds && (!source || (training ? source->num_batches() < n : source->num_batches() != n)))
    throw RuntimeError("pipeline: the feeding rank has no data source for this phase");
  auto id = [&](int64_t t) { return std::string(phase) + " batch " + std::to_string(t); };

  PhaseTiming timing;
  const auto start = Clock::now();
  std::deque<Incoming> labels_in, alpha_in, credits_in;
  std::deque<WorkPtr> labels_out, alpha_out, credits_out;

  // Posts the receives for batch t: its labels (broadcast from rank 0) and its input alpha.
  auto post = [&](int64_t t) {
    if (t >= end() || feeds) return;
    const int64_t b = batch_size_of(n_samples, batch_size, t);
    Shape y_shape{b};
    y_shape.insert(y_shape.end(), ctx_.label_shape.begin(), ctx_.label_shape.end());
    auto y = torch::empty(y_shape, on_device.dtype(ctx_.label_dtype));
    labels_in.push_back({y, transport.ibroadcast(y, 0, "labels of " + id(t))});
    Shape shape{b};
    shape.insert(shape.end(), in_shape.begin(), in_shape.end());
    auto x = torch::empty(shape, on_device.dtype(opt.message_dtype));
    alpha_in.push_back({x, transport.irecv(x, rank - 1, tag, "alpha of " + id(t))});
  };
  // A credit is one int64 on the host each way per batch. Their buffers are made once: batch t
  // uses slot t mod (window + 1), and at most `window` credits are outstanding each way, so a
  // slot's previous message has completed before it is used again.
  std::vector<torch::Tensor> credit_in_slots, credit_out_slots;
  for (int64_t i = 0; i <= window; ++i) {
    credit_in_slots.push_back(torch::empty({1}, torch::kInt64));
    credit_out_slots.push_back(torch::empty({1}, torch::kInt64));
  }
  auto slot = [&](std::vector<torch::Tensor>& slots, int64_t t) { return slots[size_t(t % (window + 1))]; };
  // Posts the receive of the next rank's credit for batch t (it has taken batch t's alpha).
  auto post_credit = [&](int64_t t) {
    if (t >= end() || ends) return;
    auto c = slot(credit_in_slots, t);
    credits_in.push_back({c, transport.irecv(c, rank + 1, credit_tag, "credit for " + id(t))});
  };
  int64_t credited = first;  // batches the next rank has taken (credits received)
  for (int64_t t = first; t < first + window; ++t) post(t), post_credit(t);
  InputStager input(feeds ? source : nullptr, first, n, opt.device, rank);  // batch t + 1 moves while t computes

  Tracer* tracer = opt.tracer;
  int64_t t = first;
  for (; t < end(); ++t) {
    if (tracer) tracer->set_batch(t);
    torch::Tensor x, y;
    if (feeds) {
      {
        Tracer::Span span(tracer, "load batch", "data");
        Batch batch = input.next();
        x = batch.x, y = batch.y;
      }
      labels_out.push_back(transport.ibroadcast(y, 0, "labels of " + id(t)));
      bound(labels_out, size_t(window), timing.wait_s, tracer);
    } else {
      y = take(labels_in.front(), timing.wait_s, tracer, "wait for labels");
      x = take(alpha_in.front(), timing.wait_s, tracer, "wait for alpha");
      labels_in.pop_front();
      alpha_in.pop_front();
      auto credit = slot(credit_out_slots, t);
      credit.data_ptr<int64_t>()[0] = t;
      credits_out.push_back(transport.isend(credit, rank - 1, credit_tag, "credit for " + id(t)));
      bound(credits_out, size_t(window), timing.wait_s, tracer);
      post(t + window);
    }
    for (size_t i = 0; i < ctx_.learners.size(); ++i) {
      auto& learner = ctx_.learners[i];
      if (opt.before_step) opt.before_step(t);
      const auto step_start = Clock::now();
      if (x.scalar_type() == torch::kBFloat16) x = x.to(torch::kFloat32);
      x = step(learner, x, y, stats);
      // Messages are rounded to their precision at every span boundary, on one rank or across two.
      if (i + 1 < ctx_.learners.size() || !ends) x = x.to(opt.message_dtype);
      charge(learner, step_start, stats);
      if (!alpha_out.empty()) alpha_out.front()->test();  // let MPI make progress between spans
    }
    if (!ends) {
      // Credits that have arrived, then, while batch t - window has not been taken, a wait.
      while (!credits_in.empty() && (t - credited >= window || credits_in.front().work->test())) {
        take(credits_in.front(), timing.wait_s, tracer, "wait for a credit");
        credits_in.pop_front();
        post_credit(++credited + window - 1);
      }
      timing.max_ahead = std::max(timing.max_ahead, t - credited + 1);
      {
        Tracer::Span span(tracer, "send alpha", "comm");
        alpha_out.push_back(transport.isend(x.contiguous(), rank + 1, tag, "alpha of " + id(t)));
      }
      bound(alpha_out, size_t(window), timing.wait_s, tracer);
    }
    if (hooks.batch_done) hooks.batch_done(t);
    if (hooks.progress) hooks.progress(t + 1, n);
  }
  if (tracer) tracer->set_batch(-1);
  while (!credits_in.empty()) {  // the credits of the last batches: no message is left unmatched
    take(credits_in.front(), timing.wait_s, tracer, "wait for a credit");
    credits_in.pop_front();
  }
  bound(labels_out, 0, timing.wait_s, tracer);
  bound(alpha_out, 0, timing.wait_s, tracer);
  bound(credits_out, 0, timing.wait_s, tracer);
  timing.batches = t - first;
  timing.seconds = since(start);
  return timing;
}

}  // namespace

std::unique_ptr<Schedule> make_stream_schedule(ScheduleContext context) {
  return std::make_unique<StreamSchedule>(std::move(context));
}

}  // namespace bll
