#include "runtime/interrupt.h"

#include <atomic>

namespace braid {

namespace {

std::atomic<int> last_signal{0};

void on_signal(int signal) {
  // Only async-signal-safe work here: remember the larger number, so SIGTERM wins over SIGINT.
  int seen = last_signal.load(std::memory_order_relaxed);
  while (signal > seen && !last_signal.compare_exchange_weak(seen, signal)) {
  }
}

}  // namespace

InterruptWatch::InterruptWatch() {
  last_signal.store(0);
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking calls carry on; the flag is read between steps
  sigaction(SIGINT, &action, &previous_int_);
  sigaction(SIGTERM, &action, &previous_term_);
}

InterruptWatch::~InterruptWatch() {
  sigaction(SIGINT, &previous_int_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
}

int InterruptWatch::received() { return last_signal.load(std::memory_order_relaxed); }

}  // namespace braid
