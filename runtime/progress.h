// Rank 0's console progress: a one-line bar with loss, samples/s and ETA that redraws in place
// on a terminal, or plain log lines (with lr, step and communication times) otherwise.
//
// runtime.progress (--progress) chooses: `bar`, `lines`, or `auto`: a bar only when the output
// really reaches a terminal. Under mpirun every rank's stdout is a pseudo-terminal even when
// mpirun's own output goes to a file, so `auto` also looks at the launcher's standard output
// (the parent process's, through /proc) and asks for a terminal type and no CI.
#pragma once

#include <cstdint>
#include <string>

namespace braid {

struct ProgressLine {
  std::int64_t step = 0, total_steps = 0, epoch = 0;
  double loss = 0, lr = 0, samples_per_s = 0, step_ms = 0, comm_ms = 0, eta_s = 0;
};

// The bar's text, at most `columns` - 1 characters wide (a full-width line would wrap and
// scroll instead of redrawing); the bar itself shrinks first, then the details go.
std::string progress_bar_text(const ProgressLine& line, int columns);

// Whether `auto` draws a bar in this process.
bool output_is_interactive();

class Progress {
 public:
  Progress(bool is_rank0, const std::string& mode);  // mode: auto | bar | lines
  bool bar() const { return bar_; }
  void show(const ProgressLine& line);
  // Ends the bar's line before other output (an evaluation line).
  void interrupt();

 private:
  bool rank0_, bar_;
  bool drawn_ = false;
};

}  // namespace braid
