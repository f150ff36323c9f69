// StragglerInjection (the inject: section): makes chosen ranks slow, for experiments and tests
// of straggler tolerance. Works with every strategy: the trainer calls after_compute() once a
// step's forward and backward passes are done, so only computing is slowed (a gradient-coding
// rank that skips a step is not delayed).
//
// A listed rank is slow at step t with probability `probability`, drawn from a hash of
// (seed, t, rank): the same on every run and every rank, whatever the timing. A slow step waits
// (slowdown - 1) x its measured compute time plus delay_ms. Waiting (sleeping) uses no CPU, so
// on an oversubscribed machine the other ranks are not slowed with it. A trace (inject.trace,
// runtime/straggler_trace.h) adds its recorded delay for (step, rank) on top.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/config.h"
#include "runtime/straggler_trace.h"

namespace braid {

class StragglerInjection {
 public:
  // ConfigError if a listed rank does not exist in a `world`-rank job, or the trace is
  // unreadable or malformed.
  StragglerInjection(const InjectConfig& config, int rank, int world);
  // Whether any rank is slowed at all (then the trainer warns at start).
  bool enabled() const;
  // Pure function of (seed, step, rank).
  bool slow_at(std::int64_t step) const;
  // Waits as configured if this rank is slow at `step`; returns the seconds waited.
  double after_compute(std::int64_t step, double compute_s) const;
  // "ranks [1] slowed 3x + 0 ms with probability 1 (seed 0)" and/or "trace FILE (N delays)",
  // for the start-up warning.
  std::string describe() const;

 private:
  InjectConfig config_;
  int rank_;
  bool listed_ = false;
  StragglerTrace trace_;
};

}  // namespace braid
