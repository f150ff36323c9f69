// Tier 2 tests of the co2 strategy under mpirun, on its identities. Trajectories are
// float64, as in local_update_test: runs that differ only in the order of float64 additions agree
// to about 1e-16 relative per step, so 1e-9 leaves a million-fold margin, while a different
// update rule (the fresh mean instead of the stale one, a hard reset to the anchor) moves
// parameters by far more; those negative controls run too and must fail the tolerance.
//  - The stale mean: co2 matches a hand-written reference that averages each round's
//    pseudo-gradient with a blocking MPI_Allreduce and applies it one round later (outer SGD lr 1
//    without penalty: exactly the stale average; Nesterov with a penalty: the header's formula).
//    The same reference without the delay is DiLoCo, checked against the diloco strategy.
//  - The hard reset (the default) sets the parameters to the anchor at each round end; the soft
//    one keeps the round's own progress on top (each checked against the reference, and the
//    other rule as the negative control).
//  - outer.clip_threshold clamps the outer momentum element-wise (the reference with the clamp,
//    and without it as the control); outer.clip_norm bounds the applied outer step: its L2 norm
//    equals a tiny clip_norm within rounding, and exceeds it without clipping.
//  - Round 0 applies nothing and waits for nothing: after it the parameters are those of
//    purely local training and the anchors the initial parameters.
//  - Every rank holds identical anchors after every step; the parameters differ.
//  - Bytes: the ring formula per round, none between rounds; quiesce() changes nothing.
//  - Resume with a round in flight (its received mean in the checkpoint) continues bit for bit.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include <cmath>
#include <optional>
#include <sstream>

#include "common/error.h"
#include "optimizers/co2_strategy.h"
#include "optimizers/replicas.h"
#include "runtime/data_parallel.h"
#include "runtime/world.h"
#include "tests/local_replica.h"
#include "training_helpers.h"

namespace braid {
namespace {

World* world = nullptr;
using test::max_relative_difference;
using test::seeded_model;

constexpr std::int64_t kBatch = 8;
constexpr int kH = 3;
constexpr int kSteps = 4 * kH;
constexpr double kTolerance = 1e-9;
constexpr double kInnerLr = 0.05;
constexpr double kInnerMomentum = 0.9;

const OuterOptimizerOptions kAveraging{"sgd", 1.0, 0.0};

// Soft reset and no clipping unless asked, so that each test pins one rule.
DataParallelOptions co2_options(OuterOptimizerOptions outer = kAveraging, double penalty = 0,
                                double clip = 0, const std::string& reset = "soft",
                                double threshold = 0) {
  DataParallelOptions options;
  options.strategy = "co2";
  options.algorithm = "ring";
  options.bucket_mb = 0.05;  // several buckets
  options.debug_checks = true;
  options.outer.steps = kH;
  options.outer.optimizer = outer;
  options.outer.staleness_penalty = penalty;
  options.outer.clip_norm = clip;
  options.outer.reset = reset;
  options.outer.clip_threshold = threshold;
  return options;
}

// One rank's float64 training with the strategy of `options`.
struct Replica : test::LocalReplica<Co2Strategy> {
  explicit Replica(const DataParallelOptions& options, c10::ScalarType dtype = torch::kFloat64)
      : LocalReplica(*world, options, kInnerMomentum, dtype) {}
};

at::Tensor mean_over_ranks(const at::Tensor& t) {
  at::Tensor sum = t.contiguous().clone();
  MPI_Allreduce(MPI_IN_PLACE, sum.data_ptr<double>(), static_cast<int>(sum.numel()), MPI_DOUBLE,
                MPI_SUM, MPI_COMM_WORLD);
  return sum / world->size();
}

// The update rules written out plainly, with a blocking allreduce of the round's pseudo-gradient.
enum class Rule {
  kCo2,        // the mean is applied one round late, theta += anchor - start (co2_strategy.h)
  kHardReset,  // the mean is applied one round late, theta = anchor (Algorithm 1 literally)
  kFresh,      // the mean is applied at once, theta = anchor (DiLoCo)
};

std::shared_ptr<Model> reference(Rule rule, OuterOptimizerOptions outer = kAveraging,
                                 double penalty = 0, double threshold = 0) {
  auto model = seeded_model("mlp", torch::kFloat64);
  torch::optim::SGD sgd(model->parameters(),
                        torch::optim::SGDOptions(kInnerLr).momentum(kInnerMomentum));
  DataPlan plan(test::fashion().train.size(), world->rank(), world->size(), kBatch, 7);
  std::vector<at::Tensor> theta = model->parameters(), anchor, start, momentum;
  for (const at::Tensor& p : theta) {
    anchor.push_back(p.detach().clone());
    start.push_back(p.detach().clone());
    momentum.push_back(at::zeros_like(p));
  }
  std::optional<std::vector<at::Tensor>> pending;
  auto apply = [&](const std::vector<at::Tensor>& mean) {
    for (std::size_t i = 0; i < anchor.size(); ++i) {
      at::Tensor d = mean[i] / (1 + penalty);
      momentum[i] = outer.momentum * momentum[i] + d;
      if (threshold > 0) momentum[i] = momentum[i].clamp(-threshold, threshold);
      at::Tensor u = outer.name == "nesterov" ? d + outer.momentum * momentum[i] : momentum[i];
      anchor[i] = anchor[i] - outer.lr * u;
    }
  };
  for (int step = 0; step < kSteps; ++step) {
    sgd.zero_grad();
    test::backward_on(*model, plan.batch_indices(0, step));
    sgd.step();
    if ((step + 1) % kH != 0) continue;
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> mean;
    for (std::size_t i = 0; i < theta.size(); ++i)
      mean.push_back(mean_over_ranks(start[i] - theta[i].detach()));
    if (rule == Rule::kFresh) {
      apply(mean);
    } else if (pending) {
      apply(*pending);
    }
    if (rule != Rule::kFresh) pending = mean;
    for (std::size_t i = 0; i < theta.size(); ++i) {
      if (rule == Rule::kCo2) {
        theta[i].add_(anchor[i] - start[i]);
      } else {
        theta[i].copy_(anchor[i]);
      }
      start[i] = theta[i].detach().clone();
    }
  }
  return model;
}

std::shared_ptr<Model> trained(const DataParallelOptions& options) {
  Replica run(options);
  run.train(0, kSteps);
  return run.model;
}

TEST(StaleMean, PenaltyZeroWithoutClippingAppliesExactlyTheStaleAverage) {
  auto co2 = trained(co2_options());
  EXPECT_LT(max_relative_difference(*co2, *reference(Rule::kCo2)), kTolerance)
      << "rank " << world->rank();
  // Negative controls: the fresh mean (DiLoCo), or a hard reset to the anchor, is another run.
  EXPECT_GT(max_relative_difference(*co2, *reference(Rule::kFresh)), 1e3 * kTolerance);
  if (world->size() > 1) {  // one rank: both rules keep the local progress
    EXPECT_GT(max_relative_difference(*co2, *reference(Rule::kHardReset)), 1e3 * kTolerance);
  }
}

TEST(StaleMean, HardResetSetsTheParametersToTheAnchor) {
  auto co2 = trained(co2_options(kAveraging, 0, 0, "hard"));
  EXPECT_LT(max_relative_difference(*co2, *reference(Rule::kHardReset)), kTolerance)
      << "rank " << world->rank();
  // Negative control: the soft reset keeps the last round's progress.
  EXPECT_GT(max_relative_difference(*co2, *reference(Rule::kCo2)), 1e3 * kTolerance);
}

// The outer momentum clamped element-wise (CO2's outer momentum clipping), with the reference
// code's outer step for few workers (SGD, lr 1, momentum 0.2) and the hard reset: the defaults
// bench/slowlink_local.sh runs. The threshold is small enough to bind on a 3-step round.
TEST(Clip, ThresholdClampsTheOuterMomentumElementWise) {
  const OuterOptimizerOptions outer{"sgd", 1.0, 0.2};
  const double threshold = 2e-4;
  auto co2 = trained(co2_options(outer, 0, 0, "hard", threshold));
  EXPECT_LT(max_relative_difference(*co2, *reference(Rule::kHardReset, outer, 0, threshold)),
            kTolerance);
  // Negative control: without the clamp the run is another, so the clamp did act.
  EXPECT_GT(max_relative_difference(*co2, *reference(Rule::kHardReset, outer)), 1e3 * kTolerance);
}

TEST(StaleMean, NesterovWithPenaltyFollowsTheHeaderFormula) {
  const OuterOptimizerOptions nesterov{"nesterov", 0.7, 0.9};
  auto co2 = trained(co2_options(nesterov, 1.5));
  EXPECT_LT(max_relative_difference(*co2, *reference(Rule::kCo2, nesterov, 1.5)), kTolerance);
  // Negative control: the penalty matters.
  EXPECT_GT(max_relative_difference(*co2, *reference(Rule::kCo2, nesterov, 0)), 1e3 * kTolerance);
}

// Checks the reference itself: without the delay it is DiLoCo, which the diloco strategy runs.
TEST(StaleMean, ReferenceWithoutDelayIsDiloco) {
  const OuterOptimizerOptions nesterov{"nesterov", 0.7, 0.9};
  DataParallelOptions diloco = co2_options(nesterov);
  diloco.strategy = "diloco";
  EXPECT_LT(max_relative_difference(*trained(diloco), *reference(Rule::kFresh, nesterov)),
            kTolerance);
}

// The L2 norm, over all tensors, of b - a, in float64.
double distance(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double squares = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    squares += (a[i] - b[i]).to(torch::kFloat64).square().sum().item<double>();
  return std::sqrt(squares);
}

std::vector<at::Tensor> copies(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& t : tensors) out.push_back(t.detach().clone());
  return out;
}

// Records the norm of each outer step (the anchors' change at each round end).
std::vector<double> outer_step_norms(double clip) {
  Replica run(co2_options({"nesterov", 0.7, 0.9}, 0, clip));
  std::vector<at::Tensor> before = copies(run.strategy().anchors());
  std::vector<double> norms;
  run.train(0, kSteps, [&](int step) {
    // What evaluation sees (runtime/global_parameters.h): the anchors.
    const std::vector<at::Tensor> global = run.strategy().global_parameters();
    ASSERT_EQ(global.size(), run.strategy().anchors().size());
    EXPECT_EQ(distance(global, run.strategy().anchors()), 0.0);
    if (step % kH != 0) return;
    norms.push_back(distance(run.strategy().anchors(), before));
    before = copies(run.strategy().anchors());
  });
  return norms;
}

TEST(Clip, NormBoundsTheNormOfTheAppliedOuterStep) {
  const double clip = 1e-3;
  const std::vector<double> clipped = outer_step_norms(clip);
  const std::vector<double> free = outer_step_norms(0);
  ASSERT_EQ(clipped.size(), 4u);
  EXPECT_EQ(clipped[0], 0.0) << "round 0 applies nothing";
  EXPECT_EQ(free[0], 0.0);
  for (std::size_t k = 1; k < clipped.size(); ++k) {
    EXPECT_NEAR(clipped[k], clip, clip * kTolerance) << "round " << k;
    // Negative control: without clipping the step is far larger, so the clip did act.
    EXPECT_GT(free[k], 10 * clip) << "round " << k;
  }
}

TEST(FirstRound, AppliesNothingAndWaitsForNothing) {
  Replica co2(co2_options({"nesterov", 0.7, 0.9}));
  const std::vector<at::Tensor> initial = copies(co2.model->parameters());
  co2.train(0, kH);
  // Purely local training for H steps: local_sgd whose first round is far away.
  DataParallelOptions local = co2_options();
  local.strategy = "local_sgd";
  local.outer.steps = 1000;
  Replica alone(local);
  alone.train(0, kH);
  EXPECT_EQ(max_relative_difference(*co2.model, *alone.model), 0.0);
  EXPECT_EQ(distance(co2.strategy().anchors(), initial), 0.0);
  EXPECT_EQ(co2.dp->stats().exposed_comm_s, 0.0) << "round 0 waited for an exchange";
}

TEST(Replicas, AnchorsIdenticalAfterEveryStepParametersDiffer) {
  Replica run(co2_options({"nesterov", 0.7, 0.9}));
  EXPECT_TRUE(run.strategy().parameters_replicated());
  Communicator& comm = run.dp->communicator();
  std::vector<at::Tensor> params = run.model->parameters();
  run.train(0, kSteps, [&](int step) {
    EXPECT_NO_THROW(check_replicas_identical(comm, run.strategy().anchors())) << "step " << step;
    EXPECT_FALSE(run.strategy().parameters_replicated());
    if (comm.size() > 1) {
      EXPECT_THROW(check_replicas_identical(comm, params), CommError) << "step " << step;
    }
  });
}

// A float32 model in one ring bucket: numel 55,050 is divisible by 2 and 3, so every ring chunk
// has the same size and the formula is exact. quiesce() after each step completes the round in
// flight, so the count is exact, and changes nothing in the trajectory.
TEST(Bytes, RingFormulaPerRoundNoneBetweenAndQuiesceChangesNothing) {
  const int P = world->size();
  DataParallelOptions options = co2_options({"nesterov", 0.7, 0.9});
  options.bucket_mb = 64;
  options.debug_checks = false;  // its cross-checks send bytes of their own
  Replica run(options, torch::kFloat32);
  std::int64_t numel = 0;
  for (const at::Tensor& p : run.model->parameters()) numel += p.numel();
  ASSERT_EQ(numel % P, 0) << "the formula below assumes equal ring chunks";
  const std::uint64_t per_round = static_cast<std::uint64_t>(2 * (P - 1) * 4 * numel / P);
  std::uint64_t before = run.dp->stats().bytes_sent;
  run.train(0, kSteps, [&](int step) {
    run.strategy().quiesce();
    const std::uint64_t sent = run.dp->stats().bytes_sent - before;
    EXPECT_EQ(sent, step % kH == 0 ? per_round : 0u) << "step " << step;
    before += sent;
  });
  EXPECT_EQ(run.dp->stats().bytes_dense, run.dp->stats().bytes_sent);
  Replica undisturbed(options, torch::kFloat32);
  undisturbed.train(0, kSteps);
  EXPECT_EQ(undisturbed.losses, run.losses);
  EXPECT_EQ(max_relative_difference(*undisturbed.model, *run.model), 0.0);
}

// Saves what a checkpoint holds (parameters, inner optimizer, strategy state after quiesce())
// after `stop` steps, resumes it into fresh objects and continues: losses and parameters bitwise
// as an uninterrupted run's. H = 3: stop 2 is before the first launch, 4 mid-round with round 0
// in flight, 6 a round boundary with round 1 just launched.
class RoundTrip : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(RoundTrip, ResumedRunContinuesBitForBit) {
  const auto& [stop, compressor] = GetParam();
  DataParallelOptions options = co2_options({"nesterov", 0.7, 0.9}, 0.5, 0.05, "hard", 1e-3);
  if (compressor != "none") {
    options.compression.compression.name = compressor;
    options.compression.compression.ratio = 0.3;
    options.compression.error_feedback = "ef";  // per-rank residuals are state too
  }
  Replica whole(options);
  whole.train(0, kSteps);

  Replica first(options);
  first.train(0, stop);
  const Replica::Saved saved = first.save();

  Replica second(options);
  second.restore(saved);
  second.train(stop, kSteps);

  EXPECT_EQ(second.losses, whole.losses) << "rank " << world->rank();
  EXPECT_EQ(max_relative_difference(*second.model, *whole.model), 0.0);
}

INSTANTIATE_TEST_SUITE_P(InFlightAndBoundary, RoundTrip,
                         ::testing::Combine(::testing::Values(2, 4, 6),
                                            ::testing::Values("none", "topk")),
                         [](const auto& info) {
                           return "stop" + std::to_string(std::get<0>(info.param)) + "_" +
                                  std::get<1>(info.param);
                         });

TEST(State, WithoutThePendingMeanIsRefused) {
  Replica run(co2_options());
  run.train(0, kH + 1);
  run.dp->strategy().quiesce();
  NamedTensors state;
  for (const auto& [name, tensor] : run.dp->strategy().state()) {
    if (name.rfind("pending.", 0) != 0) state.emplace_back(name, tensor.clone());
  }
  EXPECT_THROW(run.dp->strategy().load_state(state), CheckpointError);
}

TEST(Options, NegativePenaltyOrClipIsAConfigError) {
  LocalUpdateOptions options;
  options.outer.staleness_penalty = -1;
  EXPECT_THROW(Co2Strategy(nullptr, options), ConfigError);
  options.outer.staleness_penalty = 0;
  options.outer.clip_norm = -0.5;
  EXPECT_THROW(Co2Strategy(nullptr, options), ConfigError);
  options.outer.clip_norm = 0;
  options.outer.clip_threshold = -1;
  EXPECT_THROW(Co2Strategy(nullptr, options), ConfigError);
  options.outer.clip_threshold = 1;
  options.outer.reset = "medium";
  EXPECT_THROW(Co2Strategy(nullptr, options), ConfigError);
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) { return braid::test::run_mpi_tests(&argc, &argv, braid::world); }
