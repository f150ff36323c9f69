// Rank 0's console progress: a one-line bar with ETA on a terminal, plain log lines otherwise.
#pragma once

#include <cstdint>

namespace braid {

struct ProgressLine {
  std::int64_t step = 0, total_steps = 0, epoch = 0;
  double loss = 0, lr = 0, samples_per_s = 0, step_ms = 0, comm_ms = 0, eta_s = 0;
};

class Progress {
 public:
  // Draws a bar only when rank 0's stdout is a real terminal: mpirun hands ranks a
  // pseudo-terminal even when its own output is a file, so a terminal type is required too.
  explicit Progress(bool is_rank0);
  bool bar() const { return bar_; }
  void show(const ProgressLine& line);
  // Ends the bar's line before other output (an evaluation line).
  void interrupt();

 private:
  bool rank0_, bar_;
  bool drawn_ = false;
};

}  // namespace braid
