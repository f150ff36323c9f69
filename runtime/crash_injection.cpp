#include "runtime/crash_injection.h"

#include <csignal>
#include <cstdio>

namespace braid {

CrashInjection::CrashInjection(const InjectConfig& config, int rank, int world)
    : rank_(rank),
      applies_(config.crash_rank >= 0 && config.crash_rank < world),
      mine_(applies_ && config.crash_rank == rank),
      after_s_(config.crash_after_s) {}

void CrashInjection::check(std::chrono::steady_clock::time_point training_start) const {
  if (!mine_) return;
  const double trained =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - training_start).count();
  if (trained < after_s_) return;
  std::fprintf(stderr, "braid: inject.crash_rank: rank %d kills itself after %.1f s\n", rank_,
               trained);
  std::fflush(stderr);
  std::raise(SIGKILL);
}

}  // namespace braid
