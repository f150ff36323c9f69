// Lifetimes of the strategy layer, run under ASan by scripts/sanitize.sh: a strategy destroyed
// with buckets in flight (an exception between backward and step) breaks the communicator and
// waits, so the communication thread never writes into freed buckets; a strategy whose attach()
// failed before registering hooks is destroyed cleanly.
#include <gtest/gtest.h>
#include <torch/torch.h>

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

TEST(Lifecycle, StrategyDestroyedWithBucketsInFlightBreaksTheCommunicator) {
  spawn_ranks(
      2,
      [](Communicator& comm) {
        NamedTensors params = parameters(1000);
        Work later;
        {
          AllreduceStrategy strategy(borrowed(comm), {"ring", 0.001, /*overlap=*/true});
          strategy.attach(params);
          // Rank 0's backward launches its buckets; rank 1 never joins them, as if its step had
          // thrown. Leaving the scope must not wait for rank 1 until the deadline.
          if (comm.rank() == 0) (params[0].second * params[1].second).sum().backward();
        }
        if (comm.rank() == 0) {
          later = comm.barrier();
          EXPECT_THROW(later.wait(), CommError) << "the communicator should be broken";
        }
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
