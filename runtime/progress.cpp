#include "runtime/progress.h"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace braid {

namespace {

// A launcher that forwards its children's output: the children's terminal is not the user's.
bool parent_is_launcher() {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/comm", static_cast<int>(getppid()));
  std::FILE* file = std::fopen(path, "r");
  if (!file) return false;
  char name[64] = {};
  const bool read = std::fgets(name, sizeof name, file) != nullptr;
  std::fclose(file);
  if (!read) return false;
  const std::string comm(name, strcspn(name, "\n"));
  for (const char* launcher : {"mpirun", "mpiexec", "orterun", "orted", "prterun", "prted",
                               "hydra_pmi_proxy", "srun", "slurmstepd"}) {
    if (comm == launcher) return true;
  }
  return false;
}

// Whether the parent's standard output is a terminal device.
bool parent_output_is_terminal() {
  char link[64], target[PATH_MAX];
  std::snprintf(link, sizeof link, "/proc/%d/fd/1", static_cast<int>(getppid()));
  const ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return false;
  const std::string device(target, static_cast<std::size_t>(n));
  return device.rfind("/dev/pts/", 0) == 0 || device.rfind("/dev/tty", 0) == 0;
}

int terminal_columns() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    if (const int value = std::atoi(columns); value > 0) return value;
  }
  return 80;
}

}  // namespace

bool output_is_interactive() {
  const char* term = std::getenv("TERM");
  if (!isatty(STDOUT_FILENO) || !term || !*term || std::string(term) == "dumb") return false;
  if (std::getenv("CI")) return false;
  return !parent_is_launcher() || parent_output_is_terminal();
}

std::string progress_bar_text(const ProgressLine& p, int columns) {
  const auto eta = static_cast<long>(p.eta_s);
  const std::string tail = fmt::format(" {}/{} loss {:.4f} {:.0f} samples/s ETA {}:{:02d}", p.step,
                                       p.total_steps, p.loss, p.samples_per_s, eta / 60, eta % 60);
  const int room = columns - 1 - static_cast<int>(tail.size()) - 2;  // 2 for the brackets
  if (room < 5) {
    const std::string short_tail = fmt::format("{}/{} loss {:.4f} ETA {}:{:02d}", p.step,
                                               p.total_steps, p.loss, eta / 60, eta % 60);
    return short_tail.substr(0, static_cast<std::size_t>(std::max(columns - 1, 0)));
  }
  const int width = std::min(room, 30);
  const int filled = static_cast<int>(width * p.step / std::max<std::int64_t>(p.total_steps, 1));
  std::string bar(static_cast<std::size_t>(filled), '=');
  if (filled < width) bar += '>' + std::string(static_cast<std::size_t>(width - filled - 1), ' ');
  return "[" + bar + "]" + tail;
}

Progress::Progress(bool is_rank0, const std::string& mode) : rank0_(is_rank0) {
  bar_ = rank0_ && (mode == "bar" || (mode == "auto" && output_is_interactive()));
}

void Progress::show(const ProgressLine& p) {
  if (!rank0_) return;
  if (!bar_) {
    spdlog::info(
        "step {}/{} epoch {} loss {:.4f} lr {:.4g} {:.0f} samples/s step {:.1f} ms comm {:.2f} ms",
        p.step, p.total_steps, p.epoch, p.loss, p.lr, p.samples_per_s, p.step_ms, p.comm_ms);
    return;
  }
  // \r, the text, then erase to the end of the line: a shorter redraw leaves nothing behind.
  // On stderr, the log lines' stream: mpirun forwards stdout and stderr separately, so a bar on
  // stdout and an evaluation line on stderr could reach the terminal in either order and share
  // a line.
  fmt::print(stderr, "\r{}\x1b[K", progress_bar_text(p, terminal_columns()));
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::interrupt() {
  if (drawn_) {
    fmt::print(stderr, "\n");
    std::fflush(stderr);
  }
  drawn_ = false;
}

}  // namespace braid
