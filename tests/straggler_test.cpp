// Straggler injection (runtime/straggler.h): which steps a rank is slow at is a pure function
// of (seed, step, rank), so every run and every rank agree; probability 0 and 1 are exact;
// a listed rank outside the job is a ConfigError. A trace (inject.trace) replays its delays for
// this rank only, and every malformed line is a ConfigError naming the file and the line.
#include "runtime/straggler.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "common/error.h"

namespace braid {
namespace {

TEST(StragglerInjection, DrawsArePureAndFollowTheProbability) {
  InjectConfig config;
  config.slow_ranks = {1};
  config.slowdown = 3;
  config.probability = 0.25;
  config.seed = 7;
  const StragglerInjection a(config, 1, 4), b(config, 1, 4), other(config, 2, 4);
  int slow = 0;
  for (int step = 0; step < 4000; ++step) {
    EXPECT_EQ(a.slow_at(step), b.slow_at(step)) << "step " << step;
    EXPECT_FALSE(other.slow_at(step)) << "rank 2 is not listed";
    slow += a.slow_at(step);
  }
  // A fixed hash, so this count never changes; the bounds only say it is near 1000.
  EXPECT_GT(slow, 900);
  EXPECT_LT(slow, 1100);
  config.seed = 8;  // another seed draws other steps
  const StragglerInjection reseeded(config, 1, 4);
  int differ = 0;
  for (int step = 0; step < 100; ++step) differ += reseeded.slow_at(step) != a.slow_at(step);
  EXPECT_GT(differ, 0);
  config.probability = 0;
  EXPECT_FALSE(StragglerInjection(config, 1, 4).enabled());
  config.probability = 1;
  const StragglerInjection always(config, 1, 4);
  for (int step = 0; step < 100; ++step) EXPECT_TRUE(always.slow_at(step));
  EXPECT_EQ(always.after_compute(0, 0.0), 0.0);  // (3 - 1) x 0 s of compute, no delay: no wait
  config.slow_ranks = {4};
  EXPECT_THROW(StragglerInjection(config, 0, 4), ConfigError);
}

std::string trace_file(const std::string& text) {
  const std::string path = ::testing::TempDir() + "braid_trace_test.csv";
  std::ofstream(path) << text;
  return path;
}

TEST(StragglerTrace, ReplaysThisRanksDelaysOnly) {
  const std::string path =
      trace_file("\xEF\xBB\xBF\nstep,rank,delay_ms\n0,1,250\n3,1,0.5\n\n3,2,40\n 7 , 1 , 1e3 \n");
  const StragglerTrace one = StragglerTrace::load(path, 1, 4);
  EXPECT_EQ(one.lines(), 4);
  EXPECT_EQ(one.mine(), 3);
  EXPECT_EQ(one.delay_ms(0), 250);
  EXPECT_EQ(one.delay_ms(3), 0.5);
  EXPECT_EQ(one.delay_ms(7), 1000);
  EXPECT_EQ(one.delay_ms(1), 0);  // not listed
  const StragglerTrace two = StragglerTrace::load(path, 2, 4);
  EXPECT_EQ(two.delay_ms(3), 40);
  EXPECT_EQ(two.delay_ms(0), 0);
  EXPECT_TRUE(StragglerTrace::load(path, 0, 4).mine() == 0);
  InjectConfig config;
  config.trace = path;
  EXPECT_TRUE(StragglerInjection(config, 0, 4).enabled());  // some rank is delayed
  EXPECT_NE(StragglerInjection(config, 0, 4).describe().find("(4 delayed"), std::string::npos);
  EXPECT_EQ(StragglerInjection(config, 1, 4).after_compute(3, 0.0), 0.0005);
  std::remove(path.c_str());
}

TEST(StragglerTrace, MalformedLinesAreErrorsNamingTheLine) {
  const std::string header = "step,rank,delay_ms\n0,0,1\n";
  const std::pair<std::string, std::string> cases[] = {
      {"step,rank,delay\n", "line 1: the header must be step,rank,delay_ms"},
      {header + "1,0\n", "line 3: expected 3 fields, got 2"},
      {header + "1,0,2,3\n", "line 3: expected 3 fields, got 4"},
      {header + "x,0,2\n", "line 3: step is not an integer >= 0"},
      {header + "-1,0,2\n", "line 3: step is not an integer >= 0"},
      {header + "1,4,2\n", "line 3: rank is not one of the job's ranks 0..3"},
      {header + "1,0,-2\n", "line 3: delay_ms is not a number in [0, 3600000]"},
      {header + "1,0,nan\n", "line 3: delay_ms is not a number in [0, 3600000]"},
      {header + "1,0,2ms\n", "line 3: delay_ms is not a number in [0, 3600000]"},
      {header + "1,0,1e300\n", "line 3: delay_ms is not a number in [0, 3600000]"},
      {header + "\n0,0,5\n", "line 4: step and rank listed twice"},
      {"", "empty (no header)"},
      {"\n\n", "empty (no header)"},
      {"\n1,0,2\n", "line 2: the header must be step,rank,delay_ms"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string path = trace_file(text);
    try {
      StragglerTrace::load(path, 0, 4);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    std::remove(path.c_str());
  }
  EXPECT_THROW(StragglerTrace::load("/nonexistent/trace.csv", 0, 4), ConfigError);
}

}  // namespace
}  // namespace braid
