// StragglerTrace (inject.trace): a recorded straggler pattern replayed step by step, so that the
// same pattern (a cloud trace, a synthetic burst model) drives every strategy alike.
//
// The file is CSV with the header `step,rank,delay_ms`, then one line per delayed (step, rank):
// the step counts from 0 (the run's first step; a resumed run goes on counting), the delay is
// added after that step's forward and backward passes, like inject.delay_ms. Steps and ranks not
// listed get no delay. Blank lines (and a UTF-8 byte order mark) are skipped. A malformed line
// (a missing or extra field, a value that is not a number, a negative step, a delay outside
// [0, 1 hour], a rank outside the job, a (step, rank) listed twice) is a ConfigError naming the
// file and the line; nothing is trusted from the file.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

namespace braid {

class StragglerTrace {
 public:
  StragglerTrace() = default;
  // Reads `path`, keeping the delays of `rank` in a `world`-rank job (every line is checked).
  static StragglerTrace load(const std::string& path, int rank, int world);

  // This rank's delay at `step`, 0 if not listed.
  double delay_ms(std::int64_t step) const;
  bool empty() const { return lines_ == 0; }
  // Delays listed for all ranks, and for this one (for the start-up warning).
  std::int64_t lines() const { return lines_; }
  std::int64_t mine() const { return static_cast<std::int64_t>(delays_.size()); }

 private:
  std::unordered_map<std::int64_t, double> delays_;  // this rank's, by step
  std::int64_t lines_ = 0;
};

}  // namespace braid
