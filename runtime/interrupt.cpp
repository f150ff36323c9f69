#include "runtime/interrupt.h"

#include <atomic>
#include <cstdlib>

namespace braid {

namespace {

std::atomic<int> last_signal{0};
std::atomic<bool> stopped{false};

void on_signal(int signal) {
  // Only async-signal-safe work here: remember the larger number, so SIGTERM wins over SIGINT.
  int seen = last_signal.load(std::memory_order_relaxed);
  while (signal > seen && !last_signal.compare_exchange_weak(seen, signal)) {
  }
}

// Ctrl-Z forwarded by mpirun: remember that this rank was stopped, then stop.
void on_stop(int) {
  stopped.store(true);
  raise(SIGSTOP);
}

// mpirun's answer to a Ctrl-C sends SIGCONT at once and SIGTERM only after
// odls_base_sigkill_timeout: the SIGCONT is the early notice. One that resumes a stopped rank
// (Ctrl-Z, then fg) is not an interrupt.
void on_continue(int) {
  if (stopped.exchange(false)) return;
  on_signal(SIGINT);
}

}  // namespace

InterruptWatch::InterruptWatch() {
  last_signal.store(0);
  stopped.store(false);
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking calls carry on; the flag is read between steps
  sigaction(SIGINT, &action, &previous_int_);
  sigaction(SIGTERM, &action, &previous_term_);
  // Only under Open MPI's mpirun (its ranks carry OMPI_COMM_WORLD_SIZE), where this is what
  // SIGCONT means; elsewhere a SIGCONT after `kill -STOP` must stay a plain resume.
  watch_continue_ = std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr;
  if (watch_continue_) {
    action.sa_handler = on_continue;
    sigaction(SIGCONT, &action, &previous_cont_);
    action.sa_handler = on_stop;
    sigaction(SIGTSTP, &action, &previous_tstp_);
  }
}

InterruptWatch::~InterruptWatch() {
  sigaction(SIGINT, &previous_int_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
  if (watch_continue_) {
    sigaction(SIGCONT, &previous_cont_, nullptr);
    sigaction(SIGTSTP, &previous_tstp_, nullptr);
  }
}

int InterruptWatch::received() { return last_signal.load(std::memory_order_relaxed); }

}  // namespace braid
