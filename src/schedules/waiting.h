// What the schedules share beyond the interface: waiting for a message while counting (and
// tracing) the time blocked, and charging a span's compute time to its blocks.
#pragma once

#include <chrono>
#include <vector>

#include "bll/learner.h"
#include "bll/trace.h"
#include "bll/transport/transport.h"

namespace bll {

using ScheduleClock = std::chrono::steady_clock;

inline double since(ScheduleClock::time_point t) {
  return std::chrono::duration<double>(ScheduleClock::now() - t).count();
}

// Waits for `work`, adding the time blocked to `wait_s`; a wait that blocks becomes a trace event.
inline void wait_for(Work& work, double& wait_s, Tracer* tracer, const char* what) {
  Tracer::Span span(work.test() ? nullptr : tracer, what, "wait");
  work.wait();
  wait_s += work.waited_seconds();
}

// A span's forward and backward run as one piece: the time since `from` is shared evenly by its blocks.
inline void charge(BlockLearner& span, ScheduleClock::time_point from, std::vector<BlockStats>& stats) {
  const double share = since(from) / double(span.blocks().size());
  for (auto& block : span.blocks()) stats[size_t(block->index())].seconds += share;
}

}  // namespace bll
