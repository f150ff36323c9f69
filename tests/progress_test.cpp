// The progress bar fits the terminal (a line as wide as the terminal wraps and scrolls instead
// of redrawing) and keeps what matters: loss, samples/s and ETA, down to narrow terminals.
#include "runtime/progress.h"

#include <gtest/gtest.h>

namespace braid {
namespace {

ProgressLine sample_line() {
  ProgressLine line;
  line.step = 12345;
  line.total_steps = 99999;
  line.loss = 0.123456;
  line.samples_per_s = 123456;
  line.eta_s = 5999;
  return line;
}

TEST(ProgressBar, FitsTheTerminalAndKeepsLossThroughputAndEta) {
  for (int columns : {200, 120, 80, 60}) {
    const std::string text = progress_bar_text(sample_line(), columns);
    EXPECT_LE(static_cast<int>(text.size()), columns - 1) << columns << ": " << text;
    EXPECT_NE(text.find("loss 0.1235"), std::string::npos) << text;
    EXPECT_NE(text.find("samples/s"), std::string::npos) << text;
    EXPECT_NE(text.find("ETA 99:59"), std::string::npos) << text;
  }
  const std::string narrow = progress_bar_text(sample_line(), 40);
  EXPECT_LE(narrow.size(), 39u) << narrow;
  EXPECT_NE(narrow.find("loss"), std::string::npos) << narrow;
}

}  // namespace
}  // namespace braid
