// The trainer's side of checkpoints: when every rank saves, how rank 0 learns that a checkpoint
// is complete, how the ranks agree on where to stop when asked to, and resuming.
//
// The cut. Every rank saves its spans right after its own step of the same global batch s
// (checkpoint.every_steps divides s, or s ends the run, or s is the agreed stop). The ranks get
// there at different times, since the pipeline lets rank 0 run ahead, and nobody waits for
// anybody: each rank writes its files, sends rank 0 their sizes and CRCs, and trains on; rank 0
// writes the MANIFEST once every report is in. For BLL the cut is consistent because a span's
// state after batch s depends only on its state after s - 1, its input alpha for s (computed
// from the previous spans' state after s - 1) and the labels of s: the saved states are exactly
// those an uninterrupted run passes through, whoever saved first. The back-propagation schedules
// (gpipe, 1f1b) finish batch s everywhere before any rank starts s + 1, so the same cut holds.
//
// Stopping. A stop request (SIGTERM, SIGUSR1) reaches one rank or all at any batch. After every
// step (the run's batches counted from 1) every rank adds its request flag to a non-blocking
// all-reduce over a duplicate of the world communicator and looks at the results in order; it
// must have seen step u's result by the time it finishes step u + lag. The first step u whose
// sum is non-zero fixes the stop for everyone: the run ends with step u + lag + in_flight + 2,
// far enough ahead that no rank has yet posted a receive beyond it.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "bll/checkpoint.h"
#include "bll/config.h"
#include "bll/learner.h"
#include "bll/models/twin.h"
#include "bll/placement.h"
#include "bll/schedules/schedule.h"
#include "bll/transport/grid.h"

namespace bll {

class Checkpointer {
 public:
  struct Setup {
    const Config& config;
    const Grid& grid;
    const Placement& placement;
    std::string run_dir;
    int64_t batches_per_epoch;
    const TwinCodes* twin;  // saved with every checkpoint (loss.feedback twin), else null
    std::string normalization;  // normalization.json's text, saved with every checkpoint where not empty
  };
  explicit Checkpointer(const Setup& setup);  // collective over the world
  ~Checkpointer();

  // The hooks of epoch `epoch`'s training phase from batch `first` (the phase's statistics so
  // far are saved with each span, so a resumed epoch reports all of its batches).
  TrainHooks hooks(int64_t epoch, int64_t first, std::vector<BlockLearner>& learners, std::vector<BlockStats>& stats,
                   ProgressFn progress);
  // After each training phase: settles the stop agreement. True when the run stops here.
  bool end_phase(int64_t epoch);
  // Waits for every rank's reports of the checkpoints saved so far and (rank 0) writes their
  // manifests. Collective in effect: every rank calls it at the same point.
  void finish();

  // Seconds this rank spent saving since the last call.
  double take_seconds() { return std::exchange(seconds_, 0.0); }
  // After a stop: what happened and how to go on, for the line rank 0 prints.
  std::string stop_report() const;

 private:
  void batch_done(int64_t epoch, int64_t t, std::vector<BlockLearner>& learners, std::vector<BlockStats>& stats);
  void agree(int64_t step, bool drain);
  void save(int64_t step, const std::string& reason, std::vector<BlockLearner>& learners, std::vector<BlockStats>& stats);
  void poll(bool wait);
  void prune(int64_t newest);

  struct Pending;  // a checkpoint rank 0 waits on reports for
  struct Vote {
    int64_t step;
    torch::Tensor flag;
    WorkPtr work;
  };
  const Config& config_;
  const Grid& grid_;
  const Placement& placement_;
  std::unique_ptr<Transport> control_;  // the world's ranks, apart from the schedules' traffic
  std::string run_dir_;
  int64_t n_, total_, lag_;
  const TwinCodes* twin_;
  std::string normalization_;
  bool per_replica_;  // runtime.replicas > 1: file names carry the replica
  std::deque<Vote> votes_;
  int64_t stop_end_ = -1;  // the agreed stop: global batches to run in all (-1: none)
  int stop_signal_ = 0;
  std::deque<std::unique_ptr<Pending>> pending_;  // rank 0
  std::deque<std::pair<torch::Tensor, WorkPtr>> reports_;  // other ranks: reports on their way
  double seconds_ = 0;
};

// Where a run resumes from: world rank 0 resolves checkpoint.resume (auto, a checkpoint or a
// run directory), printing what it skipped and why. nullopt: start from scratch.
struct ResumePoint {
  std::string checkpoint;  // the checkpoint folder
  std::string run_dir;     // the run directory holding it
};
std::optional<ResumePoint> find_resume_point(const Config& config);

// Every rank: loads the spans it owns from `checkpoint` into `learners` (and the twin snapshot),
// checking each file against the manifest; returns the manifest and the saved statistics of the
// epoch in progress, by block (zero for blocks this rank did not load).
struct Resumed {
  Manifest manifest;
  std::vector<BlockStats> stats;
};
Resumed load_checkpoint(const std::string& checkpoint, const Config& config, const Grid& grid,
                        std::vector<BlockLearner>& learners, TwinCodes* twin, torch::Device device);

}  // namespace bll
