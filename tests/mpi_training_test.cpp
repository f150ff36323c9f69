// Tier 2 training tests under mpirun. They check braid's exchange, not the CPU's kernels, so
// every comparison is sharp on any x86-64 CPU:
//  - Trajectories in float64: P ranks with batch b must follow one process with batch P*b on
//    the same samples (trained inside each rank, without communication) for 20 momentum steps.
//    The only difference is the order of float64 additions (batch 16 against 2 x 8), about
//    1e-16 relative per step; 1e-9 leaves a million-fold margin for its growth, while a wrong
//    exchange (no averaging, a sum instead of a mean) moves parameters by 1e-3 or more. Both
//    negative controls are run and must fail the tolerance.
//  - One step in float32, the dtype users train in: the averaged gradient is compared with
//    the per-rank gradients averaged in float64, element by element, with the rounding bound
//    of any order of P - 1 float32 additions, (P - 1) u mean_r |g_r|, plus at most two
//    roundings of the division (by P, or a product with a rounded 1/P), 2 u |mean|: in all
//    (P + 1) u mean_r |g_r| with u = 2^-24. It holds for every reduction order and CPU.
//  - Replicas are bitwise identical across ranks after training.
//  - A model that differs across ranks is refused on every rank.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include <cmath>

#include "collectives/tensor.h"
#include "common/error.h"
#include "optimizers/dgc_sgd.h"
#include "optimizers/replicas.h"
#include "runtime/data.h"
#include "runtime/data_parallel.h"
#include "runtime/models.h"
#include "runtime/world.h"
#include "training_helpers.h"

namespace braid {
namespace {

World* world = nullptr;
using test::fashion;
using test::max_relative_difference;
using test::seeded_model;

// Trains `steps` SGD steps on the plan's batches; `dp` null means no communication.
// `lr_scale` lets a negative control train with a summed instead of an averaged gradient.
void optimizer_steps(Model& model, DataPlan& plan, int steps, DataParallel* dp,
                     torch::optim::Optimizer& optimizer) {
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    test::backward_on(model, plan.batch_indices(0, step));
    if (dp) {
      dp->step(optimizer);
    } else {
      optimizer.step();
    }
  }
}

void train_steps(Model& model, DataPlan& plan, int steps, DataParallel* dp, double lr_scale = 1) {
  torch::optim::SGD optimizer(model.parameters(),
                              torch::optim::SGDOptions(0.05 * lr_scale).momentum(0.9));
  optimizer_steps(model, plan, steps, dp, optimizer);
}

constexpr std::int64_t kBatch = 8;
constexpr int kSteps = 20;
constexpr double kTrajectoryTolerance = 1e-9;

DataParallelOptions options_for(const std::string& algorithm) {
  DataParallelOptions options;
  options.algorithm = algorithm;
  options.bucket_mb = 0.05;  // several buckets, so overlap and ordering are exercised
  options.debug_checks = true;
  return options;
}

// One process, no communication, batch `global_batch` (all ranks' samples of a step) in
// float64: the trajectory every data-parallel variant must follow.
std::shared_ptr<Model> reference_run(const std::string& model_name, std::int64_t global_batch) {
  auto reference = seeded_model(model_name, torch::kFloat64);
  DataPlan whole(fashion().train.size(), 0, 1, global_batch, 7);
  train_steps(*reference, whole, kSteps, nullptr);
  return reference;
}

// This rank's float64 model trained for kSteps with DataParallel and `options`.
std::shared_ptr<Model> data_parallel_run(const std::string& model_name,
                                         const DataParallelOptions& options, double lr_scale = 1) {
  auto model = seeded_model(model_name, torch::kFloat64);
  DataParallel dp(*world, named_parameters(*model), options);
  DataPlan mine(fashion().train.size(), world->rank(), world->size(), kBatch, 7);
  train_steps(*model, mine, kSteps, &dp, lr_scale);
  std::vector<at::Tensor> parameters = model->parameters();
  EXPECT_NO_THROW(check_replicas_identical(dp.communicator(), parameters));
  return model;
}

class Equivalence : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(Equivalence, RanksWithBatchBFollowOneProcessWithBatchPBInFloat64) {
  const auto& [model_name, algorithm] = GetParam();
  auto reference = reference_run(model_name, world->size() * kBatch);
  auto model = data_parallel_run(model_name, options_for(algorithm));
  EXPECT_LT(max_relative_difference(*model, *reference), kTrajectoryTolerance)
      << model_name << " with " << algorithm << " on rank " << world->rank();
}

INSTANTIATE_TEST_SUITE_P(
    ModelsAndAlgorithms, Equivalence,
    ::testing::Combine(::testing::Values("mlp", "cnn"),
                       ::testing::Values("ring", "star", "rhd", "native", "auto")),
    [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

// The tolerance above must be sharp enough to see the two classic exchange bugs.
TEST(NegativeControl, NoAveragingAndSummingBothFailTheTrajectoryTolerance) {
  const int P = world->size();
  const std::int64_t samples = fashion().train.size();
  auto reference = reference_run("mlp", P * kBatch);

  auto local_only = seeded_model("mlp", torch::kFloat64);
  DataPlan mine(samples, world->rank(), P, kBatch, 7);
  train_steps(*local_only, mine, kSteps, nullptr);
  EXPECT_GT(max_relative_difference(*local_only, *reference), 1e3 * kTrajectoryTolerance);

  auto summed = data_parallel_run("mlp", options_for("ring"), /*lr_scale=*/P);
  EXPECT_GT(max_relative_difference(*summed, *reference), 1e3 * kTrajectoryTolerance);
}

// One float32 step: returns how far the averaged gradient is from the float64 mean of the
// per-rank gradients, as a fraction of the rounding bound (< 1 passes), for `divisor` = P
// (correct) or 1 (a sum, the negative control).
double averaged_gradient_error(const std::string& algorithm, double divisor) {
  const int P = world->size();
  auto model = seeded_model("cnn", torch::kFloat32);
  DataParallel dp(*world, named_parameters(*model), options_for(algorithm));
  DataPlan mine(fashion().train.size(), world->rank(), P, kBatch, 7);
  const Dataset& train = fashion().train;
  at::Tensor idx = mine.batch_indices(0, 0);
  model->zero_grad();
  model->loss(model->forward(train.inputs.index_select(0, idx)), train.targets.index_select(0, idx))
      .backward();
  std::vector<at::Tensor> local;
  for (const at::Tensor& p : model->parameters()) local.push_back(p.grad().reshape({-1}));
  at::Tensor mine64 = at::cat(local).to(torch::kFloat64);
  at::Tensor all = at::empty({P, mine64.numel()}, mine64.options());
  dp.communicator().allgather(as_buffer(mine64), as_buffer(all)).wait();

  torch::optim::SGD frozen(model->parameters(), torch::optim::SGDOptions(0.0));
  dp.step(frozen);  // writes the averaged gradient into .grad; lr 0 leaves the weights
  std::vector<at::Tensor> averaged;
  for (const at::Tensor& p : model->parameters()) averaged.push_back(p.grad().reshape({-1}));
  at::Tensor got = at::cat(averaged).to(torch::kFloat64);

  at::Tensor exact = all.sum(0) / divisor;
  const double u = std::ldexp(1.0, -24);
  at::Tensor bound = (P + 1) * u * all.abs().mean(0) + 1e-30;
  return ((got - exact).abs() / bound).max().item<double>();
}

class AveragedGradient : public ::testing::TestWithParam<std::string> {};

TEST_P(AveragedGradient, IsTheFloat64MeanWithinRounding) {
  EXPECT_LT(averaged_gradient_error(GetParam(), world->size()), 1.0) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Algorithms, AveragedGradient,
                         ::testing::Values("ring", "star", "rhd", "native", "auto"));

TEST(NegativeControl, ASumInsteadOfAMeanFailsTheGradientBound) {
  EXPECT_GT(averaged_gradient_error("ring", 1.0), 1.0);
}

// Gradient accumulation: 2 micro-batches of b per rank and step (the first inside no_sync(),
// overlap on) follow one process with batch 2Pb, in float64.
TEST(GradientAccumulation, TwoMicroStepsOfBFollowOneProcessWithBatch2PB) {
  const int P = world->size();
  const std::int64_t samples = fashion().train.size();
  auto reference = reference_run("mlp", 2 * P * kBatch);

  auto model = seeded_model("mlp", torch::kFloat64);
  DataParallel dp(*world, named_parameters(*model), options_for("ring"));
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  DataPlan micro(samples, world->rank(), 2 * P, kBatch, 7);  // partition j*P + r: micro j
  const Dataset& train = fashion().train;
  for (int step = 0; step < kSteps; ++step) {
    optimizer.zero_grad();
    for (int j = 0; j < 2; ++j) {
      at::Tensor idx = micro.partition_indices(0, step, j * P + world->rank());
      at::Tensor loss =
          model->loss(model->forward(train.inputs.index_select(0, idx).to(torch::kFloat64)),
                      train.targets.index_select(0, idx)) /
          2;
      if (j == 0) {
        auto scope = dp.no_sync();
        loss.backward();
      } else {
        loss.backward();
      }
    }
    dp.step(optimizer);
  }
  EXPECT_LT(max_relative_difference(*model, *reference), kTrajectoryTolerance);
}

// Identities of compressed exchange: top-k and random-k keeping every element
// are dense averaging (the gathered payloads are summed in rank order, so the only difference
// from the reference is float64 reordering), with or without error feedback (whose residual
// then stays zero).
class CompressedEquivalence
    : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(CompressedEquivalence, KeepingEveryElementFollowsOneProcessInFloat64) {
  const auto& [compressor, feedback] = GetParam();
  auto reference = reference_run("mlp", world->size() * kBatch);
  DataParallelOptions options = options_for("ring");
  options.compression.compression.name = compressor;
  options.compression.compression.ratio = 1.0;
  options.compression.error_feedback = feedback;
  auto model = data_parallel_run("mlp", options);
  EXPECT_LT(max_relative_difference(*model, *reference), kTrajectoryTolerance)
      << compressor << " with " << feedback;
}

INSTANTIATE_TEST_SUITE_P(RatioOne, CompressedEquivalence,
                         ::testing::Combine(::testing::Values("topk", "randomk"),
                                            ::testing::Values("none", "ef")),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::get<1>(info.param);
                         });

// A compressor that drops information must fail the same tolerance (control): top-k at 10%.
TEST(NegativeControl, TopkTenPercentLeavesTheTrajectory) {
  auto reference = reference_run("mlp", world->size() * kBatch);
  DataParallelOptions options = options_for("ring");
  options.compression.compression.name = "topk";
  options.compression.compression.ratio = 0.1;
  auto model = data_parallel_run("mlp", options);
  EXPECT_GT(max_relative_difference(*model, *reference), 1e3 * kTrajectoryTolerance);
}

// This rank's float64 mlp after `steps` steps of top-k 10% with error feedback `feedback` from
// estimate start `init`; with momentum correction the optimizer is plain SGD (the memory
// carries the momentum), else momentum SGD.
std::shared_ptr<Model> estimate_init_run(const char* feedback, const char* init, int steps,
                                         bool momentum_correction) {
  DataParallelOptions options = options_for("ring");
  options.compression.compression.name = "topk";
  options.compression.compression.ratio = 0.1;
  options.compression.compression.estimate_init = init;
  options.compression.compression.momentum_correction = momentum_correction;
  options.compression.compression.dgc.momentum = 0.9;
  options.compression.error_feedback = feedback;
  auto model = seeded_model("mlp", torch::kFloat64);
  DataParallel dp(*world, named_parameters(*model), options);
  DataPlan mine(fashion().train.size(), world->rank(), world->size(), kBatch, 7);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.05).momentum(
                                                       momentum_correction ? 0.0 : 0.9));
  optimizer_steps(*model, mine, steps, &dp, optimizer);
  return model;
}

// EF21 and EControl start from h_i = g_i (compression.estimate_init: gradient): each bucket's
// first exchange goes out whole, so their first step of top-k 10% is a step of dense momentum
// SGD (whose first step is plain SGD's), with or without momentum correction, and the second is
// compressed again. Controls: the compressed start leaves the trajectory at once, and so does
// the second step.
TEST(EstimateInit, TheFirstStepOfEf21AndEControlIsDense) {
  for (int steps : {1, 2}) {
    auto reference = seeded_model("mlp", torch::kFloat64);
    DataPlan whole(fashion().train.size(), 0, 1, world->size() * kBatch, 7);
    train_steps(*reference, whole, steps, nullptr);
    for (const char* feedback : {"ef21", "econtrol"}) {
      for (const char* init : {"gradient", "compressed"}) {
        for (bool corrected : {false, true}) {
          auto model = estimate_init_run(feedback, init, steps, corrected);
          const double difference = max_relative_difference(*model, *reference);
          const std::string what =
              str_cat(feedback, " from ", init, corrected ? " corrected" : "", ", steps ", steps);
          if (steps == 1 && std::string(init) == "gradient") {
            EXPECT_LT(difference, kTrajectoryTolerance) << what;
          } else {
            EXPECT_GT(difference, 1e3 * kTrajectoryTolerance) << what;
          }
        }
      }
    }
  }
}

// ---- Deep Gradient Compression (compression/dgc_memory.h; unit tests in dgc_test.cpp) --------
// DGC keeping every element (ratio 1, no clipping) with momentum factor masking off is momentum
// SGD with dense averaging: every rank sends its whole v = u, and mean_r (m u_r + g_r) is the
// momentum buffer of the averaged gradient, so the trajectory is reference_run's up to float64
// reordering. With weight decay, DgcSgd's own momentum on the decay term makes it momentum SGD
// with weight decay (plain SGD on the decay, the control, does not), Nesterov's variant too. With
// masking on, u is cleared wherever v was sent: everywhere in the matrices (plain SGD there),
// nowhere in the biases, which DGC sends whole and which keep their momentum.
namespace dgc {

constexpr double kLr = 0.05;

// One process, the global batch, torch's own SGD: momentum m for tensors of `momentum_dims` or
// fewer dimensions (all: 4), none for the others.
std::shared_ptr<Model> sgd_reference(double momentum, int momentum_dims, double weight_decay = 0,
                                     bool nesterov = false) {
  auto reference = seeded_model("mlp", torch::kFloat64);
  std::vector<at::Tensor> with, without;
  for (const at::Tensor& p : reference->parameters()) {
    (p.dim() <= momentum_dims ? with : without).push_back(p);
  }
  auto options = [&](double m) {
    return std::make_unique<torch::optim::SGDOptions>(
        torch::optim::SGDOptions(kLr).momentum(m).weight_decay(weight_decay).nesterov(nesterov));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!with.empty()) groups.emplace_back(with, options(momentum));
  if (!without.empty()) groups.emplace_back(without, options(0));
  torch::optim::SGD optimizer(groups, torch::optim::SGDOptions(kLr));
  DataPlan whole(fashion().train.size(), 0, 1, world->size() * kBatch, 7);
  optimizer_steps(*reference, whole, kSteps, nullptr, optimizer);
  return reference;
}

struct DgcRun {
  bool masking = false;
  double weight_decay = 0;
  bool nesterov = false;
  bool decay_momentum = true;  // false: the control, plain SGD plus weight decay
};

std::shared_ptr<Model> run(const DgcRun& r) {
  auto model = seeded_model("mlp", torch::kFloat64);
  DataParallelOptions options = options_for("ring");
  options.compression.compression.name = "dgc";
  options.compression.compression.ratio = 1.0;
  options.compression.compression.dgc.momentum = 0.9;
  options.compression.compression.dgc.nesterov = r.nesterov;
  options.compression.compression.dgc.momentum_masking = r.masking;
  DataParallel dp(*world, named_parameters(*model), options);
  DataPlan mine(fashion().train.size(), world->rank(), world->size(), kBatch, 7);
  if (r.decay_momentum) {
    DgcSgdOptions o(kLr);
    o.momentum = 0.9;
    o.weight_decay = r.weight_decay;
    o.nesterov = r.nesterov;
    DgcSgd optimizer(model->parameters(), o);
    optimizer_steps(*model, mine, kSteps, &dp, optimizer);
  } else {
    torch::optim::SGD optimizer(model->parameters(),
                                torch::optim::SGDOptions(kLr).weight_decay(r.weight_decay));
    optimizer_steps(*model, mine, kSteps, &dp, optimizer);
  }
  std::vector<at::Tensor> parameters = model->parameters();
  EXPECT_NO_THROW(check_replicas_identical(dp.communicator(), parameters));
  return model;
}

TEST(Dgc, RatioOneWithoutMaskingIsMomentumSgdWithDenseAveraging) {
  auto reference = reference_run("mlp", world->size() * kBatch);
  EXPECT_LT(max_relative_difference(*run({}), *reference), kTrajectoryTolerance);
}

TEST(Dgc, WeightDecayGetsTheMomentumOfMomentumSgd) {
  for (bool nesterov : {false, true}) {
    auto reference = sgd_reference(0.9, 4, 0.05, nesterov);
    auto model = run({false, 0.05, nesterov});
    EXPECT_LT(max_relative_difference(*model, *reference), kTrajectoryTolerance) << nesterov;
  }
  // Control: plain SGD on the decay, as before DgcSgd, decays 1 / (1 - m) times less.
  auto plain_decay = run({false, 0.05, false, /*decay_momentum=*/false});
  EXPECT_GT(max_relative_difference(*plain_decay, *sgd_reference(0.9, 4, 0.05)),
            1e3 * kTrajectoryTolerance);
}

TEST(Dgc, RatioOneWithMaskingIsPlainSgdOnMatricesAndMomentumSgdOnBiases) {
  auto model = run({/*masking=*/true});
  EXPECT_LT(max_relative_difference(*model, *sgd_reference(0.9, 1)), kTrajectoryTolerance);
  // Controls: masking matters, and so does sparing the biases.
  EXPECT_GT(max_relative_difference(*model, *sgd_reference(0.9, 4)), 1e3 * kTrajectoryTolerance);
  EXPECT_GT(max_relative_difference(*model, *sgd_reference(0.9, 0)), 1e3 * kTrajectoryTolerance);
}

// compression.momentum_correction (compression/momentum_correction.h): with a lossless compressor
// (top-k keeping everything) and any error feedback, accumulating u = m u + g per rank and
// averaging u is momentum SGD with dense averaging; the optimizer runs without momentum.
class MomentumCorrection : public ::testing::TestWithParam<std::string> {};

TEST_P(MomentumCorrection, LosslessIsMomentumSgdWithDenseAveraging) {
  auto model = seeded_model("mlp", torch::kFloat64);
  DataParallelOptions options = options_for("ring");
  options.compression.compression.name = "topk";
  options.compression.compression.ratio = 1.0;
  options.compression.compression.momentum_correction = true;
  options.compression.compression.dgc.momentum = 0.9;
  options.compression.error_feedback = GetParam();
  options.compression.eta = 0;
  DataParallel dp(*world, named_parameters(*model), options);
  DataPlan mine(fashion().train.size(), world->rank(), world->size(), kBatch, 7);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(kLr));
  optimizer_steps(*model, mine, kSteps, &dp, optimizer);
  auto reference = reference_run("mlp", world->size() * kBatch);
  EXPECT_LT(max_relative_difference(*model, *reference), kTrajectoryTolerance) << GetParam();
  // Control: the correction carries the momentum; plain SGD does not follow momentum SGD.
  EXPECT_GT(max_relative_difference(*sgd_reference(0.9, 0), *reference),
            1e3 * kTrajectoryTolerance);
}

INSTANTIATE_TEST_SUITE_P(ErrorFeedback, MomentumCorrection,
                         ::testing::Values("none", "ef", "ef21", "econtrol"));

}  // namespace dgc
// ---- end of Deep Gradient Compression ------------------------------------------------------

TEST(DataParallel, ModelThatDiffersAcrossRanksIsRefusedOnEveryRank) {
  if (world->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  auto model = seeded_model("mlp", torch::kFloat32, world->rank() == 1 ? 32 : 64);
  try {
    DataParallel dp(*world, named_parameters(*model));
    ADD_FAILURE() << "no error on rank " << world->rank();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("the model differs across ranks"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  braid::World world(&argc, &argv);
  braid::world = &world;
  at::set_num_threads(1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
