// CrashInjection (inject.crash_rank, inject.crash_after_s): rank R kills itself with SIGKILL
// once it has trained for crash_after_s seconds, in every run of the job, like a node that
// fails each time it is used. For testing detection and launch/braid-restart on one machine.
// A job with R or fewer ranks (the bad node was excluded) ignores it, with a warning.
#pragma once

#include <chrono>

#include "runtime/config.h"

namespace braid {

class CrashInjection {
 public:
  CrashInjection(const InjectConfig& config, int rank, int world);
  // Whether this job has the rank at all (rank 0 logs the warning when it does not).
  bool applies() const { return applies_; }
  // Called after each step: dies once the time has come on the chosen rank.
  void check(std::chrono::steady_clock::time_point training_start) const;

 private:
  int rank_;
  bool applies_ = false, mine_ = false;
  double after_s_ = 0;
};

}  // namespace braid
