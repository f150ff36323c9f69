// Interrupts: SIGINT (Ctrl-C) and SIGTERM (Slurm's preemption, mpirun passing on a Ctrl-C) end
// a `braid train` run cleanly rather than mid-step. While an InterruptWatch lives, the two
// signals only set a flag; the trainer reads it after each step and all ranks agree on it
// (one small asynchronous allreduce per step, read one step later, so it is overlapped), then
// write a checkpoint on every rank and exit 128 + the signal's number (130, 143).
//
// Under Open MPI's mpirun a Ctrl-C reaches only mpirun (each rank has a process group of its
// own). mpirun then sends the ranks SIGCONT at once, SIGTERM after odls_base_sigkill_timeout
// seconds and SIGKILL after as many again. So there a SIGCONT that does not resume a rank
// stopped by a forwarded Ctrl-Z (SIGTSTP) counts as SIGINT: the checkpoint starts at once, and
// the timeout is the time it has to finish.
#pragma once

#include <csignal>

namespace braid {

class InterruptWatch {
 public:
  InterruptWatch();   // installs the handlers
  ~InterruptWatch();  // restores the previous ones
  InterruptWatch(const InterruptWatch&) = delete;
  InterruptWatch& operator=(const InterruptWatch&) = delete;

  // The signal received since construction (the larger if both), or 0.
  static int received();

 private:
  struct sigaction previous_int_ {
  }, previous_term_{}, previous_cont_{}, previous_tstp_{};
  bool watch_continue_ = false;
};

}  // namespace braid
