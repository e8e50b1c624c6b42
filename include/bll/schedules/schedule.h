// When things happen on one rank: a schedule runs one phase (an epoch of training, or an
// evaluation) of this rank's spans of blocks, moving alpha, labels and anything else it needs
// over the transport. One file per schedule in src/schedules/, one line each in
// src/schedules/registry.cpp:
//   stream  BLL's free-running pipeline (src/schedules/stream.cpp)
//   gpipe   back-propagation: every micro-batch forward, then every one backward (gpipe.cpp)
//   1f1b    back-propagation: one forward, one backward after a warm-up (one_f_one_b.cpp)
// The back-propagation schedules share their machinery (src/schedules/backprop.h) and differ
// only in the order of their operations.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bll/data/loader.h"
#include "bll/learner.h"
#include "bll/models/model.h"
#include "bll/placement.h"
#include "bll/trace.h"
#include "bll/transport/transport.h"

namespace bll {

struct PhaseTiming {
  double seconds = 0;     // wall time of the phase on this rank
  double wait_s = 0;      // of which blocked on communication
  int64_t batches = 0;
  int64_t max_ahead = 0;  // most batches this rank had sent that the next rank had not yet taken
  double checkpoint_s = 0;  // of which saving checkpoints (set by the trainer)
};

// Called on the feeding rank after each batch it has pushed: (batches done, batches total).
using ProgressFn = std::function<void(int64_t, int64_t)>;

// What the trainer asks of a training phase besides its batches.
struct TrainHooks {
  ProgressFn progress;
  int64_t first = 0;  // the first batch to train: a resumed epoch starts where the checkpoint was cut
  // Every rank, once its steps of batch t are done (checkpoints are taken here).
  std::function<void(int64_t t)> batch_done;
  // Asked before each batch: the phase ends before batch end() (at most n; an agreed stop makes
  // it less). Whoever lowers it does so before any rank posts a receive for a batch beyond it:
  // by the time a rank finishes batch t, end() must be final or above t + in_flight + 1.
  std::function<int64_t()> end;
};

struct ScheduleOptions {
  int64_t in_flight = 2;                          // batches a rank may run ahead of the next
  int64_t micro_batches = 1;                      // bp schedules: micro-batches per mini-batch
  torch::Device device = torch::kCPU;             // where this rank's tensors live
  torch::Dtype message_dtype = torch::kFloat32;   // alpha between spans (bf16 halves the bytes)
  std::function<void(int64_t)> before_step;       // called with the batch index before each span's
                                                  // step (tests make a rank slow with it)
  Tracer* tracer = nullptr;                       // runtime.trace: where events go
};

// What a schedule works with. `learners` are this rank's spans of blocks in order;
// `boundary_shapes[k]` is the per-sample input shape of block k (block_boundary_shapes);
// `label_shape` the per-sample shape of the labels ({} for a class per sample, {T} for a class
// per token, an image for reconstruction) and `label_dtype` their type.
struct ScheduleContext {
  Transport& transport;
  const Placement& placement;
  std::vector<BlockLearner>& learners;
  std::vector<Shape> boundary_shapes;
  Shape label_shape;
  torch::Dtype label_dtype;
  ScheduleOptions options;
};

class Schedule {
 public:
  explicit Schedule(ScheduleContext context) : ctx_(std::move(context)) {}
  virtual ~Schedule() = default;

  // One training epoch over n_samples (full batches only): the first n_samples / batch_size
  // batches of `source`, which is used on the feeding rank; from hooks.first to hooks.end().
  virtual PhaseTiming train(BatchSource* source, int64_t n_samples, int64_t batch_size,
                            std::vector<BlockStats>& stats, const TrainHooks& hooks = {}) = 0;

  // Inference over n_samples (every sample; the last batch may be partial).
  virtual PhaseTiming eval(BatchSource* source, int64_t n_samples, int64_t batch_size,
                           std::vector<BlockStats>& stats) = 0;

 protected:
  ScheduleContext ctx_;
};

// The schedule registered as `name`; throws ConfigError naming the known ones.
std::unique_ptr<Schedule> make_schedule(const std::string& name, ScheduleContext context);
std::vector<std::string> schedule_names();

}  // namespace bll
