#include "backprop.h"

#include <chrono>
#include <deque>

#include "bll/device.h"
#include "bll/error.h"
#include "waiting.h"

namespace bll {

std::unique_ptr<Schedule> make_stream_schedule(ScheduleContext context);

namespace {

using Clock = ScheduleClock;
constexpr int kTagAlpha = 301, kTagGrad = 302;

// One micro-batch on this rank: each span's input and output, and the loss on the last rank.
struct Micro {
  std::vector<torch::Tensor> in, out;
  torch::Tensor loss;
};

Shape with_batch(int64_t b, const Shape& shape) {
  Shape s{b};
  s.insert(s.end(), shape.begin(), shape.end());
  return s;
}

}  // namespace

BackpropSchedule::BackpropSchedule(ScheduleContext context)
    : Schedule(context), evaluation_(make_stream_schedule(std::move(context))) {}

PhaseTiming BackpropSchedule::eval(BatchSource* source, int64_t n_samples, int64_t batch_size,
                                   std::vector<BlockStats>& stats) {
  return evaluation_->eval(source, n_samples, batch_size, stats);
}

PhaseTiming BackpropSchedule::train(BatchSource* source, int64_t n_samples, int64_t batch_size,
                                    std::vector<BlockStats>& stats, const TrainHooks& hooks) {
  Transport& t = ctx_.transport;
  const ScheduleOptions& opt = ctx_.options;
  auto& learners = ctx_.learners;
  const int rank = t.rank();
  const bool feeds = ctx_.placement.feeds_pipeline(rank), ends = ctx_.placement.ends_pipeline(rank);
  const int64_t n = num_batches(n_samples, batch_size, true), M = opt.micro_batches, first = hooks.first;
  auto end = [&] { return hooks.end ? std::min(n, hooks.end()) : n; };
  const Shape& in_shape = ctx_.boundary_shapes[size_t(ctx_.placement.first_block(rank))];
  const Shape& out_shape = ctx_.boundary_shapes[size_t(ctx_.placement.end_block(rank))];
  const auto on_device = torch::TensorOptions().device(opt.device);
  if (feeds && (!source || source->num_batches() < n))
    throw RuntimeError("pipeline: the feeding rank has no data source for this phase");
  const std::vector<Op> ops = order(rank, t.size(), M);
  Tracer* tracer = opt.tracer;

  PhaseTiming timing;
  const auto start = Clock::now();
  auto wait = [&](WorkPtr w, const char* what) { wait_for(*w, timing.wait_s, tracer, what); };

  InputStager input(feeds ? source : nullptr, first, n, opt.device, rank);  // batch b + 1 moves while b computes
  int64_t b = first;
  for (; b < end(); ++b) {
    if (tracer) tracer->set_batch(b);
    const std::string id = "train batch " + std::to_string(b);
    torch::Tensor x, y;
    if (feeds) {
      Tracer::Span span(tracer, "load batch", "data");
      Batch batch = input.next();
      x = batch.x, y = batch.y;
    } else {
      y = torch::empty(with_batch(batch_size, ctx_.label_shape), on_device.dtype(ctx_.label_dtype));
    }
    wait(t.ibroadcast(y, 0, "labels of " + id), "wait for labels");
    for (auto& l : learners) l.zero_grad();

    std::vector<int64_t> first(size_t(M) + 1, 0);  // micro-batch m is rows first[m] .. first[m+1]
    for (int64_t m = 0; m < M; ++m) first[size_t(m) + 1] = first[size_t(m)] + batch_size / M + (m < batch_size % M ? 1 : 0);
    std::vector<Micro> micro(static_cast<size_t>(M));
    std::deque<WorkPtr> sends;
    for (const Op& op : ops) {
      Micro& mb = micro[size_t(op.micro)];
      const int64_t rows = first[size_t(op.micro) + 1] - first[size_t(op.micro)];
      const std::string what = id + " micro-batch " + std::to_string(op.micro);
      if (op.forward) {
        torch::Tensor in;
        if (feeds) {
          in = x.narrow(0, first[size_t(op.micro)], rows);
        } else {
          in = torch::empty(with_batch(rows, in_shape), on_device.dtype(torch::kFloat32));
          wait(t.irecv(in, rank - 1, kTagAlpha, "alpha of " + what), "wait for alpha");
          in.requires_grad_(true);
        }
        for (size_t s = 0; s < learners.size(); ++s) {
          if (s > 0) in = mb.out.back().detach().requires_grad_(true);
          const auto from = Clock::now();
          mb.in.push_back(in);
          mb.out.push_back(learners[s].forward_graph(in));
          if (s + 1 == learners.size() && ends)
            mb.loss = learners[s].output_loss(mb.out.back(), y.narrow(0, first[size_t(op.micro)], rows),
                                              double(rows) / double(batch_size), stats);
          charge(learners[s], from, stats);
        }
        if (!ends) {
          Tracer::Span span(tracer, "send alpha", "comm");
          sends.push_back(t.isend(mb.out.back().detach().contiguous(), rank + 1, kTagAlpha, "alpha of " + what));
        }
      } else {
        torch::Tensor grad;
        if (!ends) {
          grad = torch::empty(with_batch(rows, out_shape), on_device.dtype(torch::kFloat32));
          wait(t.irecv(grad, rank + 1, kTagGrad, "gradient of " + what), "wait for a gradient");
        }
        for (size_t s = learners.size(); s-- > 0;) {
          Tracer::Span span(tracer, "backward", "compute");
          const auto from = Clock::now();
          if (s + 1 == learners.size()) {
            if (ends) mb.loss.backward();
            else mb.out[s].backward(grad);
          } else {
            mb.out[s].backward(mb.in[s + 1].grad());
          }
          charge(learners[s], from, stats);
        }
        if (!feeds) {
          Tracer::Span span(tracer, "send gradient", "comm");
          sends.push_back(t.isend(mb.in.front().grad().contiguous(), rank - 1, kTagGrad, "gradient of " + what));
        }
        mb = Micro{};  // the graph and activations of this micro-batch are no longer needed
      }
    }
    for (auto& w : sends) wait(std::move(w), "wait for a send");
    for (auto& l : learners) {
      if (opt.before_step) opt.before_step(b);
      Tracer::Span span(tracer, "optimizer step", "compute");
      const auto from = Clock::now();
      l.step();
      charge(l, from, stats);
    }
    if (hooks.batch_done) hooks.batch_done(b);
    if (hooks.progress) hooks.progress(b + 1, n);
  }
  timing.batches = b - first;
  timing.seconds = since(start);
  return timing;
}

}  // namespace bll
