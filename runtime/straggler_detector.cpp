#include "runtime/straggler_detector.h"

#include <algorithm>

#include "common/error.h"
#include "common/statistics.h"

namespace braid {

StragglerDetector::StragglerDetector(int world, double factor, int steps)
    : world_(world), steps_(steps), factor_(factor), ratios_(static_cast<std::size_t>(world)) {
  BRAID_CHECK(world >= 1 && factor > 1 && steps >= 1, "straggler detection needs world >= 1, ",
              "factor > 1 and steps >= 1");
}

std::optional<StragglerReport> StragglerDetector::add(const std::vector<double>& seconds) {
  BRAID_CHECK(static_cast<int>(seconds.size()) == world_, "compute times of ", seconds.size(),
              " ranks for a ", world_, "-rank job");
  std::optional<StragglerReport> flagged;
  if (world_ < 2) return flagged;
  for (int r = 0; r < world_; ++r) {
    std::vector<double> others = seconds;
    others.erase(others.begin() + r);
    const double typical = median(others);
    std::deque<double>& ratios = ratios_[static_cast<std::size_t>(r)];
    if (typical > 0) {  // else nothing computed elsewhere: no evidence either way
      ratios.push_back(seconds[static_cast<std::size_t>(r)] / typical);
      if (static_cast<int>(ratios.size()) > steps_) ratios.pop_front();
    }
    if (static_cast<int>(ratios.size()) < steps_) continue;
    // Above the factor only when 80% of the window is (16 of 20 steps).
    std::vector<double> window(ratios.begin(), ratios.end());
    const auto lower = window.begin() + static_cast<std::ptrdiff_t>(window.size() / 5);
    std::nth_element(window.begin(), lower, window.end());
    const double ratio = *lower;
    if (ratio > factor_ && (!flagged || ratio > flagged->ratio))
      flagged = StragglerReport{r, ratio};
  }
  return flagged;
}

}  // namespace braid
