// Per-rank timelines (runtime.trace): what each rank did when -- loading a batch, forward and
// local loss, backward, optimizer step, sends, and waits for messages -- merged by rank 0 into
// trace.json in the run directory, in the Chrome trace-event format (one row per rank; open it
// in https://ui.perfetto.dev or chrome://tracing). A disabled tracer records nothing: each call
// returns after one test of a flag.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "bll/transport/transport.h"

namespace bll {

class Tracer {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Tracer(bool enabled = false) : enabled_(enabled), origin_(Clock::now()) {}
  bool enabled() const { return enabled_; }

  // The common time origin; every rank calls it at the same point (after a collective).
  void restart() { origin_ = Clock::now(); }
  // The batch that later events belong to (shown as an argument), or -1.
  void set_batch(int64_t batch) { batch_ = batch; }

  // Records an event that lasts while it is alive. `name` and `category` must be literals.
  class Span {
   public:
    Span(Tracer* tracer, const char* name, const char* category)
        : tracer_(tracer && tracer->enabled_ ? tracer : nullptr), name_(name), category_(category) {
      if (tracer_) begin_ = Clock::now();
    }
    ~Span() {
      if (tracer_) tracer_->add(name_, category_, begin_, Clock::now());
    }
    Span(const Span&) = delete;
    Span& operator=(const Span&) = delete;

   private:
    Tracer* tracer_;
    const char* name_;
    const char* category_;
    Clock::time_point begin_;
  };

  void add(const char* name, const char* category, Clock::time_point begin, Clock::time_point end);

  // This rank's events as trace-event JSON objects, comma-separated.
  std::string events_json(int rank) const;

 private:
  struct Event {
    const char* name;
    const char* category;
    double ts_us, dur_us;
    int64_t batch;
  };
  bool enabled_;
  Clock::time_point origin_;
  int64_t batch_ = -1;
  std::vector<Event> events_;
};

// Gathers every rank's events on rank 0, which writes `path` (one row per rank). Collective.
void write_trace(Transport& t, const Tracer& tracer, const std::string& path);

}  // namespace bll
