#include "runtime/progress.h"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace braid {

Progress::Progress(bool is_rank0) : rank0_(is_rank0) {
  const char* term = std::getenv("TERM");
  bar_ = rank0_ && isatty(STDOUT_FILENO) && term && *term && std::string(term) != "dumb" &&
         !std::getenv("CI");
}

void Progress::show(const ProgressLine& p) {
  if (!rank0_) return;
  if (!bar_) {
    spdlog::info(
        "step {}/{} epoch {} loss {:.4f} lr {:.4g} {:.0f} samples/s step {:.1f} ms comm {:.2f} ms",
        p.step, p.total_steps, p.epoch, p.loss, p.lr, p.samples_per_s, p.step_ms, p.comm_ms);
    return;
  }
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * p.step / std::max<std::int64_t>(p.total_steps, 1));
  std::string bar(filled, '=');
  if (filled < kWidth) bar += '>' + std::string(kWidth - filled - 1, ' ');
  const auto eta = static_cast<long>(p.eta_s);
  fmt::print("\r[{}] {}/{} loss {:.4f} {:.0f} samples/s ETA {}:{:02d}   ", bar, p.step,
             p.total_steps, p.loss, p.samples_per_s, eta / 60, eta % 60);
  std::fflush(stdout);
  drawn_ = true;
}

void Progress::interrupt() {
  if (drawn_) fmt::print("\n");
  drawn_ = false;
}

}  // namespace braid
