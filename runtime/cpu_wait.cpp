#include "runtime/cpu_wait.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

namespace braid {

std::optional<std::int64_t> run_queue_wait_ns() {
  const int fd = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char text[128];
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  text[n] = '\0';
  // "<ns on a CPU> <ns waiting on a run queue> <time slices>"
  char* end = nullptr;
  std::strtoll(text, &end, 10);
  const char* second = end;
  const long long waited = std::strtoll(second, &end, 10);
  if (end == second || waited < 0) return std::nullopt;
  return waited;
}

double run_queue_seconds_since(const std::optional<std::int64_t>& before) {
  if (!before) return 0.0;
  const std::optional<std::int64_t> now = run_queue_wait_ns();
  if (!now || *now < *before) return 0.0;
  return static_cast<double>(*now - *before) * 1e-9;
}

}  // namespace braid
