// StragglerDetector: names a rank whose compute is persistently slower than the others'
// (runtime.straggler_factor). Every rank feeds it every rank's compute time of each step (the
// trainer piggybacks them on the per-step interrupt allreduce), so every rank reaches the same
// verdict without a message of its own.
//
// A rank's ratio at a step is its compute time over the median of the other ranks' (with two
// ranks: the other rank's). It is flagged while 80% of its last `steps` ratios exceed `factor`
// (16 of 20): a few steps where the machine hiccups neither name a rank nor clear one that is
// slow, and a 3x straggler is named at its 20th step. Steps where the others' median is 0 (nothing
// computed: a gradient-coding rank that already holds a result) are not counted.
#pragma once

#include <deque>
#include <optional>
#include <vector>

namespace braid {

struct StragglerReport {
  int rank = -1;
  double ratio = 0;  // the 20th percentile of its last `steps` ratios
};

class StragglerDetector {
 public:
  StragglerDetector(int world, double factor, int steps = 20);
  // One step's compute seconds, indexed by rank. Returns the flagged rank with the largest
  // ratio, or nothing when no rank is flagged.
  std::optional<StragglerReport> add(const std::vector<double>& seconds);

 private:
  int world_, steps_;
  double factor_;
  std::vector<std::deque<double>> ratios_;  // per rank, the last steps_
};

}  // namespace braid
