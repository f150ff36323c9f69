// Lifetimes of the strategy layer, run under ASan by scripts/sanitize.sh: a strategy destroyed
// with buckets in flight while an exception unwinds (one thrown between backward and step)
// breaks the communicator and waits, so the communication thread never writes into freed
// buckets; destroyed on a plain exit with buckets every rank launched (a GAN's last generator
// phase sends the discriminator's), it lets them complete; a strategy whose attach() failed
// before registering hooks is destroyed cleanly.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/error.h"
#include "optimizers/allreduce_strategy.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::spawn_ranks;

CommOptions generous() {
  CommOptions options;
  // Longer than the CTest timeout (30 s): waiting for the deadline would fail the test.
  options.timeout = std::chrono::seconds(60);
  return options;
}

NamedTensors parameters(std::int64_t width) {
  return {{"w", at::ones({width}).set_requires_grad(true)},
          {"b", at::ones({width}).set_requires_grad(true)}};
}

std::shared_ptr<Communicator> borrowed(Communicator& comm) {
  return {&comm, [](Communicator*) {}};
}

TEST(Lifecycle, StrategyUnwoundWithBucketsInFlightBreaksTheCommunicator) {
  spawn_ranks(
      2,
      [](Communicator& comm) {
        NamedTensors params = parameters(1000);
        Work later;
        try {
          AllreduceStrategy strategy(borrowed(comm), {"ring", 0.001, /*overlap=*/true});
          strategy.attach(params);
          // Rank 0's backward launches its buckets and then its loop throws; rank 1 never joins
          // them. Unwinding must not wait for rank 1 until the deadline.
          if (comm.rank() == 0) {
            (params[0].second * params[1].second).sum().backward();
            throw Error("the user's loop failed");
          }
        } catch (const Error&) {
        }
        if (comm.rank() == 0) {
          later = comm.barrier();
          EXPECT_THROW(later.wait(), CommError) << "the communicator should be broken";
        }
      },
      generous());
}

TEST(Lifecycle, StrategyDestroyedWithBucketsEveryRankLaunchedLetsThemComplete) {
  spawn_ranks(
      2,
      [](Communicator& comm) {
        NamedTensors params = parameters(1000);
        {
          AllreduceStrategy strategy(borrowed(comm), {"ring", 0.001, /*overlap=*/true});
          strategy.attach(params);
          (params[0].second * params[1].second).sum().backward();  // no step follows
        }
        EXPECT_NO_THROW(comm.barrier().wait()) << "the communicator should still work";
      },
      generous());
}

TEST(Lifecycle, StrategyWhoseAttachFailedIsDestroyedCleanly) {
  spawn_ranks(
      2,
      [](Communicator& comm) {
        NamedTensors params = parameters(comm.rank() == 0 ? 4 : 5);
        AllreduceStrategy strategy(borrowed(comm), {});
        EXPECT_THROW(strategy.attach(params), ConfigError);
      },
      generous());
}

}  // namespace
}  // namespace braid
