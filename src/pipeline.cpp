#include "bll/pipeline.h"

#include <chrono>
#include <deque>

#include "bll/device.h"
#include "bll/error.h"

namespace bll {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kTagTrain = 101, kTagEval = 102;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A message on its way in: the buffer and the handle that fills it.
struct Incoming {
  torch::Tensor tensor;
  WorkPtr work;
};

torch::Tensor take(Incoming& in, double& wait_s) {
  in.work->wait();
  wait_s += in.work->waited_seconds();
  return in.tensor;
}

// Keeps at most `limit` handles outstanding; waits for the oldest beyond that.
void bound(std::deque<WorkPtr>& q, size_t limit, double& wait_s) {
  while (q.size() > limit) {
    q.front()->wait();
    wait_s += q.front()->waited_seconds();
    q.pop_front();
  }
}

}  // namespace

Pipeline::Pipeline(Transport& transport, const Placement& placement, std::vector<BlockLearner>& learners,
                   std::vector<Shape> boundary_shapes, Shape label_shape, torch::Dtype label_dtype, PipelineOptions options)
    : transport_(transport), placement_(placement), learners_(learners), shapes_(std::move(boundary_shapes)),
      label_shape_(std::move(label_shape)), label_dtype_(label_dtype), opt_(options) {}

PhaseTiming Pipeline::train(BatchSource* source, int64_t n_samples, int64_t batch_size, std::vector<BlockStats>& stats,
                            const ProgressFn& progress) {
  auto step = [](BlockLearner& l, const torch::Tensor& x, const torch::Tensor& y, std::vector<BlockStats>& s) {
    return l.train_step(x, y, s);
  };
  return stream(true, source, n_samples, batch_size, stats, step, progress);
}

PhaseTiming Pipeline::eval(BatchSource* source, int64_t n_samples, int64_t batch_size, std::vector<BlockStats>& stats) {
  auto step = [](BlockLearner& l, const torch::Tensor& x, const torch::Tensor& y, std::vector<BlockStats>& s) {
    return l.eval_step(x, y, s);
  };
  return stream(false, source, n_samples, batch_size, stats, step, {});
}

PhaseTiming Pipeline::stream(bool training, BatchSource* source, int64_t n_samples, int64_t batch_size,
                             std::vector<BlockStats>& stats, const Step& step, const ProgressFn& progress) {
  const int rank = transport_.rank();
  const bool feeds = placement_.feeds_pipeline(rank), ends = placement_.ends_pipeline(rank);
  const int tag = training ? kTagTrain : kTagEval;
  const int64_t n = num_batches(n_samples, batch_size, training);
  const size_t window = size_t(opt_.in_flight);
  const auto on_device = torch::TensorOptions().device(opt_.device);
  const Shape& in_shape = shapes_[size_t(placement_.first_block(rank))];
  const char* phase = training ? "train" : "eval";
  if (feeds && (!source || source->num_batches() != n))
    throw RuntimeError("pipeline: the feeding rank has no data source for this phase");

  PhaseTiming timing;
  const auto start = Clock::now();
  std::deque<Incoming> labels_in, alpha_in;
  std::deque<WorkPtr> labels_out, alpha_out;

  // Posts the receives for batch t: its labels (broadcast from rank 0) and its input alpha.
  auto post = [&](int64_t t) {
    if (t >= n || feeds) return;
    const int64_t b = batch_size_of(n_samples, batch_size, t);
    const std::string id = std::string(phase) + " batch " + std::to_string(t);
    Shape y_shape{b};
    y_shape.insert(y_shape.end(), label_shape_.begin(), label_shape_.end());
    auto y = torch::empty(y_shape, on_device.dtype(label_dtype_));
    labels_in.push_back({y, transport_.ibroadcast(y, 0, "labels of " + id)});
    Shape shape{b};
    shape.insert(shape.end(), in_shape.begin(), in_shape.end());
    auto x = torch::empty(shape, on_device.dtype(opt_.message_dtype));
    alpha_in.push_back({x, transport_.irecv(x, rank - 1, tag, "alpha of " + id)});
  };
  for (int64_t t = 0; t < int64_t(window); ++t) post(t);

  for (int64_t t = 0; t < n; ++t) {
    torch::Tensor x, y;
    if (feeds) {
      Batch batch = source->get(t);
      x = to_device(batch.x, opt_.device), y = to_device(batch.y, opt_.device);
      labels_out.push_back(transport_.ibroadcast(y, 0, std::string("labels of ") + phase + " batch " + std::to_string(t)));
      bound(labels_out, window, timing.wait_s);
    } else {
      y = take(labels_in.front(), timing.wait_s);
      x = take(alpha_in.front(), timing.wait_s);
      labels_in.pop_front();
      alpha_in.pop_front();
      post(t + int64_t(window));
    }
    for (size_t i = 0; i < learners_.size(); ++i) {
      auto& learner = learners_[i];
      const auto step_start = Clock::now();
      if (x.scalar_type() == torch::kBFloat16) x = x.to(torch::kFloat32);
      x = step(learner, x, y, stats);
      // Messages are rounded to their precision at every span boundary, on one rank or across two.
      if (i + 1 < learners_.size() || !ends) x = x.to(opt_.message_dtype);
      // A span's forward and backward run as one piece: its time is shared evenly by its blocks.
      const double share = since(step_start) / double(learner.blocks().size());
      for (auto& block : learner.blocks()) stats[size_t(block->index())].seconds += share;
      if (!alpha_out.empty()) alpha_out.front()->test();  // let MPI make progress between spans
    }
    if (!ends) {
      alpha_out.push_back(transport_.isend(x.contiguous(), rank + 1, tag,
                                           std::string("alpha of ") + phase + " batch " + std::to_string(t)));
      bound(alpha_out, window, timing.wait_s);
    }
    if (progress) progress(t + 1, n);
  }
  bound(labels_out, 0, timing.wait_s);
  bound(alpha_out, 0, timing.wait_s);
  timing.batches = n;
  timing.seconds = since(start);
  return timing;
}

}  // namespace bll
