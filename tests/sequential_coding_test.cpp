// The sequential-coding strategy with threads as ranks, float64: whoever the root leaves out (a
// forced straggler pattern inside the model, no timing), every rank follows synchronous SGD with
// T-step-delayed gradients, w_{t+1} = w_t - lr * momentum_step(g_{t-T}(w_{t-T})), where g_j is the
// mean gradient of step j's global batch at step j's parameters; replicas stay bitwise alike.
#include "optimizers/sequential_coding_strategy.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

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

constexpr int kRanks = 4, kSteps = 14, kRows = 3, kInputs = 5;

// Unit u of step t's global batch: closed formulas (no generator shared by threads).
at::Tensor inputs(std::int64_t step, int u) {
  auto f64 = at::TensorOptions(at::kDouble);
  return at::sin(at::arange(kRows * kInputs, f64).view({kRows, kInputs}) * (0.3 + 0.07 * u) +
                 static_cast<double>(step));
}
at::Tensor targets(std::int64_t step, int u) {
  return at::cos(at::arange(kRows, at::TensorOptions(at::kDouble)).view({kRows, 1}) + u -
                 static_cast<double>(step));
}

torch::nn::Linear make_model() {
  static std::mutex mutex;  // the default generator is shared by all threads
  std::lock_guard<std::mutex> lock(mutex);
  torch::manual_seed(3);
  torch::nn::Linear model(kInputs, 1);
  model->to(at::kDouble);
  return model;
}

at::Tensor unit_loss(torch::nn::Linear& model, std::int64_t step, int u) {
  return (model(inputs(step, u)) - targets(step, u)).pow(2).mean();
}

at::Tensor flat(torch::nn::Linear& model) {
  return at::cat({model->weight.reshape(-1), model->bias}).detach().clone();
}

torch::optim::SGD make_sgd(torch::nn::Linear& model) {
  return torch::optim::SGD(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.5));
}

struct Trajectory {
  std::vector<at::Tensor> params;  // final parameters per rank
  std::vector<double> losses;      // the decoded loss of each job applied (rank 0)
  std::int64_t straggler_rounds = 0;
  std::int64_t uncomputed = 0;  // rounds ranks applied without computing
};

// The reference: the gradient of job j is the mean unit gradient at w_j, applied at step j + T.
Trajectory delayed_sgd(int units, int delay) {
  torch::nn::Linear model = make_model(), at_job = make_model();
  torch::optim::SGD sgd = make_sgd(model);
  std::vector<at::Tensor> history;  // w_j
  std::vector<std::vector<at::Tensor>> grads;
  Trajectory run;
  for (int t = 0; t < kSteps; ++t) {
    history.push_back(flat(model));
    const int job = t - delay;
    if (job < 0) continue;
    {
      torch::NoGradGuard no_grad;
      at_job->weight.copy_(history[job].narrow(0, 0, kInputs).view({1, kInputs}));
      at_job->bias.copy_(history[job].narrow(0, kInputs, 1));
    }
    at_job->zero_grad();
    at::Tensor loss = unit_loss(at_job, job, 0);
    for (int u = 1; u < units; ++u) loss = loss + unit_loss(at_job, job, u);
    loss = loss / units;
    loss.backward();
    run.losses.push_back(loss.item<double>());
    sgd.zero_grad();
    model->weight.mutable_grad() = at_job->weight.grad().clone();
    model->bias.mutable_grad() = at_job->bias.grad().clone();
    sgd.step();
  }
  run.params.push_back(flat(model));
  return run;
}

// `late` (round, rank): that rank starts computing that round only after the root finished the
// next one (ordering by construction, no sleeps), so it skips the round after.
Trajectory coded(const std::string& scheme, int burst, int window,
                 std::function<bool(std::int64_t, int)> stragglers,
                 std::function<bool(std::int64_t, int)> late = {}) {
  RootProgress root;
  Trajectory run;
  run.params.resize(kRanks);
  std::mutex mutex;
  CommOptions options;
  options.timeout = std::chrono::seconds(30);
  spawn_ranks(
      kRanks,
      [&](Communicator& world) {
        auto comm = std::shared_ptr<Communicator>(&world, [](Communicator*) {});
        const int r = world.rank();
        torch::nn::Linear model = make_model();
        torch::optim::SGD sgd = make_sgd(model);
        SequentialCodingOptions o{scheme,    burst, window, 1, 0.5, 0, NonFinitePolicy::kError,
                                  stragglers};
        SequentialCodingStrategy strategy(comm, o);
        strategy.attach({{"weight", model->weight}, {"bias", model->bias}});
        std::vector<double> losses;
        for (int t = 0; t < kSteps; ++t) {
          sgd.zero_grad();
          const BatchAssignment mine = strategy.assign_batch(t, r, kRanks);
          EXPECT_EQ(mine.pieces, strategy.code().units());
          if (strategy.wants_gradients()) {
            if (late && late(t, r)) root.wait_for(t + 2);
            double loss = 0;
            for (std::size_t k = 0; k < mine.partitions.size(); ++k) {
              strategy.begin_partition(k, loss);
              at::Tensor l = unit_loss(model, t - mine.steps_back[k], mine.partitions[k]);
              (l * mine.weights[k]).backward();
              loss += l.item<double>() * mine.weights[k];
            }
            strategy.set_step_loss(loss);
          }
          strategy.step(sgd);
          if (t >= strategy.code().delay()) losses.push_back(*strategy.global_loss());
          if (r == 0) root.finished(t);
        }
        strategy.quiesce();
        std::lock_guard<std::mutex> lock(mutex);
        run.params[r] = flat(model);
        run.uncomputed += strategy.uncomputed_steps();
        if (r == 0) {
          run.losses = losses;
          run.straggler_rounds = strategy.straggler_rounds();
        }
      },
      options);
  return run;
}

void expect_follows(const Trajectory& run, const Trajectory& ref) {
  const double tol = 1e3 * std::numeric_limits<double>::epsilon();
  ASSERT_EQ(run.losses.size(), ref.losses.size());
  for (std::size_t j = 0; j < ref.losses.size(); ++j) {
    EXPECT_NEAR(run.losses[j], ref.losses[j], tol) << "job " << j;
  }
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_TRUE(run.params[r].equal(run.params[0])) << "rank " << r << " drifted";
  }
  EXPECT_LE((run.params[0] - ref.params[0]).abs().max().item<double>(), tol)
      << run.params[0] << "\nvs\n"
      << ref.params[0];
}

// Rank 2 straggles in rounds 2, 5 and 8, rank 3 in round 11: isolated, one per window of 3.
bool isolated(std::int64_t round, int rank) {
  return (rank == 2 && (round == 2 || round == 5 || round == 8)) || (rank == 3 && round == 11);
}
// Bursts of 2: rank 1 in rounds 2-3, rank 3 in rounds 7-8.
bool bursts(std::int64_t round, int rank) {
  return (rank == 1 && (round == 2 || round == 3)) || (rank == 3 && (round == 7 || round == 8));
}

TEST(SequentialCoding, MultiplexedFollowsDelayedSgdWhoeverStraggles) {
  for (int burst : {1, 2}) {
    SCOPED_TRACE(burst);
    const Trajectory run = coded("m_sgc", burst, 3, burst == 1 ? isolated : bursts);
    EXPECT_EQ(run.straggler_rounds, 4) << "the root used every forced straggler";
    SequentialCode code("m_sgc", kRanks, burst, 3, 1);
    expect_follows(run, delayed_sgd(code.units(), code.delay()));
  }
}

// Rank 1 really is late in round 2 (a burst of 2 is forced on it in rounds 2-3): it computes
// round 2 after the root finished round 3, then finds round 3's result and skips computing it.
TEST(SequentialCoding, ALateRankSkipsTheRoundItAlreadyHolds) {
  const Trajectory run = coded(
      "m_sgc", 2, 3, bursts, [](std::int64_t round, int rank) { return rank == 1 && round == 2; });
  EXPECT_EQ(run.uncomputed, 1);
  SequentialCode code("m_sgc", kRanks, 2, 3, 1);
  expect_follows(run, delayed_sgd(code.units(), code.delay()));
}

TEST(SequentialCoding, SelectiveRepetitionFollowsDelayedSgdWhoeverStraggles) {
  const Trajectory run = coded("sr_sgc", 1, 3, isolated);
  EXPECT_EQ(run.straggler_rounds, 4);
  expect_follows(run, delayed_sgd(kRanks, 1));
}

TEST(SequentialCoding, WithoutStragglersToo) {
  const Trajectory run = coded("m_sgc", 1, 3, [](std::int64_t, int) { return false; });
  EXPECT_EQ(run.straggler_rounds, 0);
  expect_follows(run, delayed_sgd(20, 2));
}

// A pattern outside the model (two ranks in one window) is not used: the root waits for them.
// In round 0 no job is due yet: only the model check refuses it.
TEST(SequentialCoding, APatternOutsideTheModelWaitsForEveryone) {
  const Trajectory run = coded("m_sgc", 1, 3, [](std::int64_t round, int rank) {
    return (round == 0 || round == 4) && (rank == 1 || rank == 2);
  });
  EXPECT_EQ(run.straggler_rounds, 0);
  expect_follows(run, delayed_sgd(20, 2));
}

TEST(SequentialCoding, NegativeControlTheDelayMatters) {
  const double tol = 1e3 * std::numeric_limits<double>::epsilon();
  const Trajectory delayed = delayed_sgd(20, 2), prompt = delayed_sgd(20, 0);
  EXPECT_GT((delayed.params[0] - prompt.params[0]).abs().max().item<double>(), 100 * tol);
  const Trajectory other_units = delayed_sgd(19, 2);
  EXPECT_GT((delayed.params[0] - other_units.params[0]).abs().max().item<double>(), 100 * tol);
}

}  // namespace
}  // namespace braid
