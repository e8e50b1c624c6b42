#include "bll/stop.h"

#include <atomic>
#include <csignal>
#include <cstdio>

namespace bll {
namespace {

// Written by whichever thread takes the signal, read by the main thread: a lock-free atomic
// (a volatile sig_atomic_t is safe for a handler on the reading thread only).
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the stop flag must be usable from a signal handler");

extern "C" void on_stop_signal(int signal) {
  int none = 0;
  g_signal.compare_exchange_strong(none, signal);  // the first signal is the one reported
  std::signal(SIGTERM, SIG_DFL);  // from now on a SIGTERM ends the process at once
}

}  // namespace

void install_stop_handlers() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
  std::signal(SIGXFSZ, SIG_IGN);
}

int stop_requested() { return g_signal.load(); }

void request_stop(int signal) { g_signal.store(signal); }

const char* signal_name(int signal) {
  static char buf[24];
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGINT: return "SIGINT";
    default: std::snprintf(buf, sizeof buf, "signal %d", signal); return buf;
  }
}

}  // namespace bll
