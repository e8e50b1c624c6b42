#include <chrono>
#include <exception>
#include <thread>

#include "bll/transport/transport.h"

namespace bll {

bool drain_or_abort(const std::function<bool()>& drained, const std::function<void()>& abort, double timeout_s) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const bool unwinding = std::uncaught_exceptions() > 0;
  while (!drained()) {
    if (unwinding || std::chrono::duration<double>(Clock::now() - start).count() > timeout_s) {
      abort();
      return false;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

}  // namespace bll
