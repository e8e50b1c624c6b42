#include "bll/stop.h"

#include <csignal>
#include <cstdio>

namespace bll {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int signal) {
  if (g_signal == 0) g_signal = signal;
  std::signal(SIGTERM, SIG_DFL);  // a second SIGTERM ends the process
}

}  // namespace

void install_stop_handlers() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
  std::signal(SIGXFSZ, SIG_IGN);
}

int stop_requested() { return int(g_signal); }

void request_stop(int signal) { g_signal = signal; }

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
