// How tensors move between ranks. One interface; one backend per file (mpi_transport.cpp now).
//
// Contracts:
//  - Non-blocking calls return a Work handle; the tensor must stay alive and untouched until the
//    handle completes (handles keep a reference to it).
//  - Point-to-point messages between one pair of ranks with the same tag arrive in the order
//    they were sent.
//  - Collectives (ibroadcast, iallreduce_sum, allreduce_sum, broadcast_string, barrier) must be called by every
//    rank of the transport in the same order.
//  - Only the thread that created the transport calls it.
//  - wait() gives up after the transport's timeout and throws RuntimeError naming the operation
//    and the peer, so that a lost rank stops the job instead of hanging it.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace bll {

class Work {
 public:
  virtual ~Work() = default;
  virtual bool test() = 0;  // true once complete; never blocks
  virtual void wait() = 0;  // blocks until complete (or throws on timeout)
  double waited_seconds() const { return waited_; }

 protected:
  // The waiting loop of every backend: polls test() until it is true, sleeping a growing pause
  // (up to `max_pause`; none when `sleep` is false) between polls, and adds the time to
  // waited_seconds(). Once more than `timeout_s` has passed it calls on_timeout(seconds waited),
  // which must throw.
  template <class OnTimeout>
  void poll(double timeout_s, bool sleep, std::chrono::microseconds max_pause, OnTimeout on_timeout) {
    if (test()) return;
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    auto pause = std::chrono::microseconds(2);
    while (!test()) {
      const double s = std::chrono::duration<double>(Clock::now() - start).count();
      if (s > timeout_s) on_timeout(s);
      if (sleep) {
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, max_pause);
      }
    }
    waited_ += std::chrono::duration<double>(Clock::now() - start).count();
  }

  double waited_ = 0;
};
using WorkPtr = std::unique_ptr<Work>;

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;

  virtual WorkPtr isend(const torch::Tensor& t, int dst, int tag, const std::string& what) = 0;
  virtual WorkPtr irecv(const torch::Tensor& t, int src, int tag, const std::string& what) = 0;
  virtual WorkPtr ibroadcast(const torch::Tensor& t, int root, const std::string& what) = 0;

  virtual WorkPtr iallreduce_sum(const torch::Tensor& t, const std::string& what) = 0;  // in place
  void allreduce_sum(const torch::Tensor& t) { iallreduce_sum(t, "all-reduce")->wait(); }  // blocking
  virtual void broadcast_string(std::string& s, int root) = 0;
  virtual void barrier() = 0;

  // A transport over the same ranks whose messages and collectives never meet this one's, for
  // control traffic beside a schedule's (a collective call; host tensors).
  virtual std::unique_ptr<Transport> duplicate() = 0;
};

// How a transport whose operations run on a device ends: it waits up to `timeout_s` for the
// queued work to drain (`drained` polls it), then calls `abort`. While an exception is unwinding
// (a failure on this rank: the peers' matching operations may never come) it calls `abort` at
// once instead of waiting. Returns true when the work drained.
bool drain_or_abort(const std::function<bool()>& drained, const std::function<void()>& abort, double timeout_s);

// Runs `step` on every rank of `t` (a collective call). If it throws bll::Error on any rank,
// every rank throws AgreedError with the message and code of the lowest failing rank, which alone
// reports it: a start-up check that fails on several ranks is read once, and no rank is left
// waiting for one that gave up.
void agree_on_every_rank(Transport& t, const std::function<void()>& step);

}  // namespace bll
