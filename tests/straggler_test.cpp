// Straggler injection (runtime/straggler.h): which steps a rank is slow at is a pure function
// of (seed, step, rank), so every run and every rank agree; probability 0 and 1 are exact;
// a listed rank outside the job is a ConfigError.
#include "runtime/straggler.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace braid
