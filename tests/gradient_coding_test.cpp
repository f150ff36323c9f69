// The gradient-coding strategy with threads as ranks, float64: without stragglers it follows
// plain synchronous SGD on the same global batch; with a rank that is late at every step (it
// starts a step only after the root finished later ones: ordering by construction, no sleeps)
// the root never waits for it, its late messages never match a later step, it skips steps
// whose result it already holds, and every replica applies the same bytes. Fewer than n - s
// arrivals end with a TimeoutError.
#include "optimizers/gradient_coding_strategy.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <condition_variable>
#include <limits>
#include <mutex>

#include "common/error.h"
#include "tests/root_progress.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::RootProgress;
using testing::spawn_ranks;

constexpr int kRanks = 4, kSteps = 12, kRows = 3, kInputs = 5;

// Partition j of step t: inputs and targets from closed formulas (no generator shared by threads).
at::Tensor inputs(int step, int j) {
  auto f64 = at::TensorOptions(at::kDouble);
  return at::sin(at::arange(kRows * kInputs, f64).view({kRows, kInputs}) * (0.3 + 0.1 * j) + step);
}
at::Tensor targets(int step, int j) {
  return at::cos(at::arange(kRows, at::TensorOptions(at::kDouble)).view({kRows, 1}) + j - step);
}

torch::nn::Linear make_model() {
  static std::mutex mutex;  // the default generator is shared by all threads
  std::lock_guard<std::mutex> lock(mutex);
  torch::manual_seed(3);
  torch::nn::Linear model(kInputs, 1);
  model->to(at::kDouble);
  return model;
}

at::Tensor partition_loss(torch::nn::Linear& model, int step, int j) {
  return (model(inputs(step, j)) - targets(step, j)).pow(2).mean();
}

struct CodedRun {
  std::vector<at::Tensor> params;  // final parameters, flattened into one vector per rank
  std::vector<double> losses;      // global loss per step
  std::int64_t skipped = 0;
};

// Plain synchronous SGD on the full batch of n partitions: the reference.
CodedRun synchronous() {
  torch::nn::Linear model = make_model();
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1));
  CodedRun run;
  for (int t = 0; t < kSteps; ++t) {
    sgd.zero_grad();
    at::Tensor loss = partition_loss(model, t, 0);
    for (int j = 1; j < kRanks; ++j) loss = loss + partition_loss(model, t, j);
    loss = loss / kRanks;
    loss.backward();
    run.losses.push_back(loss.item<double>());
    sgd.step();
  }
  run.params.push_back(at::cat({model->weight.reshape(-1), model->bias}).detach());
  return run;
}

// `late_rank` >= 0 starts each step it computes only after the root finished two more steps.
CodedRun coded(const std::string& scheme, int late_rank) {
  CodedRun run;
  run.params.resize(kRanks);
  RootProgress root;
  std::mutex mutex;
  CommOptions options;
  options.timeout = std::chrono::seconds(30);  // a hang becomes a TimeoutError
  // Debug checks on: they must neither wait for the late rank nor collide with the results
  // members receive ahead (the channel checks those instead).
  options.debug_checks = true;
  spawn_ranks(
      kRanks,
      [&](Communicator& world) {
        auto comm = std::shared_ptr<Communicator>(&world, [](Communicator*) {});
        const int r = world.rank();
        torch::nn::Linear model = make_model();
        torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1));
        GradientCodingStrategy strategy(comm, {scheme, 1, 0});
        strategy.attach({{"weight", model->weight}, {"bias", model->bias}});
        const BatchAssignment mine = strategy.assign_batch(0, r, kRanks);
        std::vector<double> losses;
        for (int t = 0; t < kSteps; ++t) {
          sgd.zero_grad();
          if (strategy.wants_gradients()) {
            if (r == late_rank) root.wait_for(std::min(t + 3, kSteps));
            double loss = 0;
            for (std::size_t k = 0; k < mine.partitions.size(); ++k) {
              at::Tensor l = partition_loss(model, t, mine.partitions[k]);
              (l * mine.weights[k]).backward();
              loss += l.item<double>() * mine.weights[k];
            }
            strategy.set_step_loss(loss);
          }
          strategy.step(sgd);
          losses.push_back(*strategy.global_loss());
          if (r == 0) root.finished(t);
        }
        strategy.quiesce();
        std::lock_guard<std::mutex> lock(mutex);
        run.params[r] = at::cat({model->weight.reshape(-1), model->bias}).detach();
        if (r == 0) run.losses = losses;
        if (r == late_rank) run.skipped = strategy.uncomputed_steps();
      },
      options);
  return run;
}

// Within float64 rounding of a few operations on O(1) values per step: the decoded sum and the
// reference sum differ in order of additions and by the decoding weights' rounding.
void expect_close(const at::Tensor& a, const at::Tensor& b, double scale) {
  const double tol = 1e3 * std::numeric_limits<double>::epsilon() * scale;
  EXPECT_LE((a - b).abs().max().item<double>(), tol) << a << "\nvs\n" << b;
}

void expect_follows_synchronous(const CodedRun& run) {
  const CodedRun ref = synchronous();
  for (int t = 0; t < kSteps; ++t) {
    EXPECT_NEAR(run.losses[t], ref.losses[t], 1e3 * std::numeric_limits<double>::epsilon())
        << "step " << t;
  }
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_TRUE(run.params[r].equal(run.params[0])) << "rank " << r << " drifted";
  }
  expect_close(run.params[0], ref.params[0], 1.0);
}

TEST(GradientCoding, FollowsSynchronousSgdWithoutStragglers) {
  for (const std::string scheme : {"fractional", "cyclic"}) {
    SCOPED_TRACE(scheme);
    expect_follows_synchronous(coded(scheme, -1));
  }
}

TEST(GradientCoding, ALateRankNeverHoldsTheRootAndSkipsStepsItHolds) {
  for (const std::string scheme : {"fractional", "cyclic"}) {
    SCOPED_TRACE(scheme);
    const CodedRun run = coded(scheme, 2);
    expect_follows_synchronous(run);
    EXPECT_GT(run.skipped, 0) << "the late rank computed every step";
  }
}

TEST(GradientCoding, NegativeControlDroppedPartitionIsDetected) {
  // The same comparison must fail for an update that misses one partition's gradient.
  torch::nn::Linear model = make_model();
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1));
  for (int t = 0; t < kSteps; ++t) {
    sgd.zero_grad();
    at::Tensor loss = partition_loss(model, t, 0);
    for (int j = 1; j < kRanks - 1; ++j) loss = loss + partition_loss(model, t, j);
    (loss / kRanks).backward();
    sgd.step();
  }
  const at::Tensor wrong = at::cat({model->weight.reshape(-1), model->bias}).detach();
  const double tol = 1e3 * std::numeric_limits<double>::epsilon();
  EXPECT_GT((wrong - synchronous().params[0]).abs().max().item<double>(), 100 * tol);
}

// One rank of a cyclic code with s = 1 over `world` (a thread rank), with its own model.
struct CyclicRank {
  explicit CyclicRank(Communicator& world)
      : model(make_model()),
        sgd(model->parameters(), torch::optim::SGDOptions(0.1)),
        strategy(std::shared_ptr<Communicator>(&world, [](Communicator*) {}), {"cyclic", 1, 0}) {
    strategy.attach({{"weight", model->weight}, {"bias", model->bias}});
  }
  torch::nn::Linear model;
  torch::optim::SGD sgd;
  GradientCodingStrategy strategy;
};

TEST(GradientCoding, TooFewArrivalsTimeOut) {
  CommOptions options;
  options.timeout = std::chrono::milliseconds(300);
  RootProgress root;
  spawn_ranks(
      3,
      [&](Communicator& world) {
        CyclicRank rank(world);
        if (world.rank() == 0) {
          // Ranks 1 and 2 never send: 1 of the n - s = 2 messages needed.
          rank.strategy.assign_batch(0, 0, 3);
          EXPECT_THROW(rank.strategy.step(rank.sgd), braid::TimeoutError);
          root.finished(0);
        } else {
          root.wait_for(1);
        }
      },
      options);
}

// A member that hangs without crashing (rank 2 never steps) is a straggler the code tolerates,
// but the root keeps a posted receive and its buffer for it at every step: past kMaxBacklog
// steps the root fails naming it, instead of growing without bound until the next quiesce.
TEST(GradientCoding, AMemberThatHangsIsNamedOnceItsBacklogIsFull) {
  CommOptions options;
  options.timeout = std::chrono::seconds(2);
  RootProgress root;
  std::string message;
  int root_steps = 0;
  spawn_ranks(
      3,
      [&](Communicator& world) {
        CyclicRank rank(world);
        auto& [model, sgd, strategy] = rank;
        if (world.rank() == 2) return root.wait_for(1);  // hangs until the root gave up
        const BatchAssignment mine = strategy.assign_batch(0, world.rank(), 3);
        try {
          for (int t = 0; t < 4 * GradientCodingStrategy::kMaxBacklog; ++t) {
            sgd.zero_grad();
            for (std::size_t k = 0; k < mine.partitions.size(); ++k) {
              (partition_loss(model, t, mine.partitions[k]) * mine.weights[k]).backward();
            }
            strategy.set_step_loss(0);
            strategy.step(sgd);
            if (world.rank() == 0) ++root_steps;
          }
        } catch (const CommError& e) {
          if (world.rank() == 0) message = e.what();
        }
        if (world.rank() == 0) root.finished(0);
      },
      options);
  EXPECT_NE(message.find("rank 2 has not sent its block"), std::string::npos) << message;
  EXPECT_EQ(root_steps, GradientCodingStrategy::kMaxBacklog);
}

// A plain loop (each rank backpropagates its own batch, never asking assign_batch) would be
// decoded as coded gradients and averaged wrongly: its first step is refused on every rank.
TEST(GradientCoding, APlainLoopWithoutTheAssignmentIsRefused) {
  std::vector<std::string> messages(3);
  spawn_ranks(3, [&](Communicator& world) {
    CyclicRank rank(world);
    rank.sgd.zero_grad();
    partition_loss(rank.model, 0, world.rank()).backward();
    try {
      rank.strategy.step(rank.sgd);
    } catch (const braid::ConfigError& e) {
      messages[world.rank()] = e.what();
    }
  });
  for (const std::string& message : messages) {
    EXPECT_NE(message.find("call strategy().assign_batch(step, rank, world)"), std::string::npos)
        << message;
  }
}

TEST(GradientCoding, InvalidStragglerCountIsAConfigError) {
  spawn_ranks(4, [](Communicator& world) {
    auto comm = std::shared_ptr<Communicator>(&world, [](Communicator*) {});
    EXPECT_THROW(GradientCodingStrategy(comm, {"fractional", 2, 0}), braid::ConfigError);
  });
}

}  // namespace
}  // namespace braid
