// Tier 2 tests of the local-update strategies (local_sgd, diloco) under mpirun, on the
// identities of DiLoCo and local SGD. Trajectories are float64, as in mpi_training_test:
// two runs that differ only in the order of float64 additions agree to about 1e-16 relative per
// step, so 1e-9 leaves a million-fold margin, while an outer step that is not the average (outer
// lr 0.5, or a compressor dropping 90% of the pseudo-gradient) moves parameters by far more;
// those negative controls run too and must fail the tolerance.
//  - diloco with H = 1, outer SGD lr 1, momentum 0 and inner SGD without momentum, and local_sgd
//    with H = 1, follow synchronous averaging (the allreduce strategy).
//  - Pseudo-gradients pass through the compression layer: top-k keeping everything, with error
//    feedback, follows the uncompressed run.
//  - After every outer step all ranks hold bitwise identical anchors and parameters; within a
//    round the parameters differ.
//  - Bytes per rank: none between rounds, 2(P-1)/P x 4 x numel per round (float32 ring).
//  - The outer optimizer's recurrence is libtorch's SGD (Nesterov or heavy ball), bitwise.
//  - State round trip: saving mid-round or at a round boundary and resuming into fresh objects
//    continues with bitwise identical losses and parameters.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include <sstream>

#include "common/error.h"
#include "optimizers/local_update_strategy.h"
#include "optimizers/outer_optimizer.h"
#include "optimizers/replicas.h"
#include "runtime/data_parallel.h"
#include "runtime/global_parameters.h"
#include "runtime/world.h"
#include "tests/local_replica.h"
#include "training_helpers.h"

namespace braid {
namespace {

World* world = nullptr;
using test::max_relative_difference;
using test::seeded_model;

constexpr std::int64_t kBatch = 8;
constexpr int kSteps = 12;
constexpr double kTolerance = 1e-9;
constexpr double kInnerLr = 0.05;

DataParallelOptions options_for(const std::string& strategy, std::int64_t H,
                                OuterOptimizerOptions outer = {}) {
  DataParallelOptions options;
  options.strategy = strategy;
  options.algorithm = "ring";
  options.bucket_mb = 0.05;  // several buckets
  options.debug_checks = true;
  options.outer.steps = H;
  options.outer.optimizer = outer;
  return options;
}

const OuterOptimizerOptions kAveraging{"sgd", 1.0, 0.0};

// One rank's float64 training with the local-update strategy of `options`.
struct Replica : test::LocalReplica<LocalUpdateStrategy> {
  Replica(const DataParallelOptions& options, double momentum,
          c10::ScalarType dtype = torch::kFloat64)
      : LocalReplica(*world, options, momentum, dtype) {}
};

std::shared_ptr<Model> trained(const DataParallelOptions& options, double momentum = 0) {
  Replica run(options, momentum);
  run.train(0, kSteps);
  return run.model;
}

TEST(Identity, DilocoH1WithOuterSgdLr1FollowsSynchronousAveraging) {
  DataParallelOptions sync;
  sync.algorithm = "ring";
  auto reference = trained(sync);
  auto diloco = trained(options_for("diloco", 1, kAveraging));
  EXPECT_LT(max_relative_difference(*diloco, *reference), kTolerance) << "rank " << world->rank();
  // Negative control: an outer step of half the average is not synchronous averaging.
  auto half = trained(options_for("diloco", 1, {"sgd", 0.5, 0.0}));
  EXPECT_GT(max_relative_difference(*half, *reference), 1e3 * kTolerance);
}

TEST(Identity, LocalSgdH1FollowsSynchronousAveraging) {
  DataParallelOptions sync;
  sync.algorithm = "ring";
  auto reference = trained(sync);
  auto local = trained(options_for("local_sgd", 1, {"nesterov", 0.7, 0.9}));  // outer.* ignored
  EXPECT_LT(max_relative_difference(*local, *reference), kTolerance) << "rank " << world->rank();
  // Negative control: H = 2 is not synchronous averaging.
  auto rarely = trained(options_for("local_sgd", 2));
  EXPECT_GT(max_relative_difference(*rarely, *reference), 1e3 * kTolerance);
}

// The pseudo-gradients go through the compression layer: top-k keeping every element, with
// error feedback (whose residual stays zero), is the dense exchange; top-k 10% is not.
TEST(Identity, PseudoGradientsPassThroughAnyCompressor) {
  auto dense = trained(options_for("diloco", 3), 0.9);
  DataParallelOptions all = options_for("diloco", 3);
  all.compression.compression.name = "topk";
  all.compression.compression.ratio = 1.0;
  all.compression.error_feedback = "ef";
  EXPECT_LT(max_relative_difference(*trained(all, 0.9), *dense), kTolerance);
  DataParallelOptions tenth = all;
  tenth.compression.compression.ratio = 0.1;
  EXPECT_GT(max_relative_difference(*trained(tenth, 0.9), *dense), 1e3 * kTolerance);
}

TEST(Replicas, IdenticalAfterEveryOuterStepAndDifferentWithinARound) {
  const int H = 3;
  Replica run(options_for("diloco", H), /*momentum=*/0.9);
  Communicator& comm = run.dp->communicator();
  std::vector<at::Tensor> params = run.model->parameters();
  run.train(0, 3 * H, [&](int step) {
    const std::vector<at::Tensor>& anchors = run.strategy().anchors();
    EXPECT_NO_THROW(check_replicas_identical(comm, anchors)) << "step " << step;
    if (step % H == 0) {
      EXPECT_TRUE(run.strategy().parameters_replicated());
      EXPECT_NO_THROW(check_replicas_identical(comm, params)) << "step " << step;
      for (std::size_t i = 0; i < params.size(); ++i)
        EXPECT_TRUE(params[i].equal(anchors[i])) << "parameter " << i << " step " << step;
    } else if (comm.size() > 1) {
      EXPECT_FALSE(run.strategy().parameters_replicated());
      EXPECT_THROW(check_replicas_identical(comm, params), CommError) << "step " << step;
    }
  });
}

// Evaluation and the exported model see the global parameters (runtime/global_parameters.h):
// inside the scope the model holds the anchors bitwise, and mid-round those are not the live
// replica (control); afterwards the live values are back bit for bit. A synchronous strategy
// has no global parameters, and the scope leaves the model alone.
TEST(GlobalParameters, TheScopeShowsTheAnchorsAndRestoresTheReplica) {
  const int H = 4;
  for (const char* strategy : {"local_sgd", "diloco"}) {
    Replica run(options_for(strategy, H), /*momentum=*/0.9);
    run.train(0, H + 2);  // mid-round: the replica has moved off the anchors
    std::vector<at::Tensor> params = run.model->parameters();
    std::vector<at::Tensor> live;
    for (const at::Tensor& p : params) live.push_back(p.detach().clone());
    const std::vector<at::Tensor> anchors = run.dp->strategy().global_parameters();
    ASSERT_EQ(anchors.size(), params.size()) << strategy;
    {
      GlobalParametersScope scope(run.dp->strategy(), params);
      for (std::size_t i = 0; i < params.size(); ++i) {
        EXPECT_TRUE(params[i].equal(anchors[i])) << strategy << " parameter " << i;
        EXPECT_FALSE(params[i].equal(live[i])) << strategy << " parameter " << i;
      }
    }
    for (std::size_t i = 0; i < params.size(); ++i)
      EXPECT_TRUE(params[i].equal(live[i])) << strategy << " parameter " << i;
  }
  DataParallelOptions sync;
  sync.algorithm = "ring";
  Replica synchronous(sync, 0.9);
  synchronous.train(0, 2);
  EXPECT_TRUE(synchronous.dp->strategy().global_parameters().empty());
}

// A float32 model in one ring bucket: numel 55,050 is divisible by 2 and 3, so every ring chunk
// has the same size and the formula is exact.
TEST(Bytes, NoneBetweenRoundsAndTheRingFormulaPerRound) {
  const int H = 3, P = world->size();
  DataParallelOptions options = options_for("diloco", H);
  options.bucket_mb = 64;
  options.debug_checks = false;  // its cross-checks send bytes of their own
  Replica run(options, 0.9, torch::kFloat32);
  std::int64_t numel = 0;
  for (const at::Tensor& p : run.model->parameters()) numel += p.numel();
  ASSERT_EQ(numel % P, 0) << "the formula below assumes equal ring chunks";
  const std::uint64_t per_round = static_cast<std::uint64_t>(2 * (P - 1) * 4 * numel / P);
  std::uint64_t before = run.dp->stats().bytes_sent;
  run.train(0, 2 * H, [&](int step) {
    const std::uint64_t sent = run.dp->stats().bytes_sent - before;
    EXPECT_EQ(sent, step % H == 0 ? per_round : 0u) << "step " << step;
    before += sent;
  });
  EXPECT_EQ(run.dp->stats().bytes_dense, run.dp->stats().bytes_sent);
}

// The outer optimizer is libtorch's SGD fed with .grad = Delta, bitwise.
TEST(OuterOptimizer, MatchesLibtorchSgdBitwise) {
  for (bool nesterov : {true, false}) {
    torch::manual_seed(5);
    at::Tensor start = torch::randn({7, 3}, torch::kFloat64);
    at::Tensor anchor = start.clone();
    at::Tensor theirs = start.clone().requires_grad_(true);
    OuterOptimizer outer({nesterov ? "nesterov" : "sgd", 0.7, 0.9}, {anchor});
    torch::optim::SGD sgd({theirs}, torch::optim::SGDOptions(0.7).momentum(0.9).nesterov(nesterov));
    for (int k = 0; k < 5; ++k) {
      at::Tensor delta = torch::randn({7, 3}, torch::kFloat64);
      outer.step(0, anchor, delta);
      theirs.mutable_grad() = delta.clone();
      sgd.step();
      EXPECT_TRUE(anchor.equal(theirs.detach()))
          << (nesterov ? "nesterov" : "sgd") << " step " << k;
    }
    EXPECT_FALSE(anchor.equal(start));
  }
}

// Saves what a checkpoint holds (parameters, inner optimizer, strategy state) after `stop`
// steps, resumes it into fresh objects and continues: losses and parameters bitwise as an
// uninterrupted run's. H = 3: stop 4 is mid-round, stop 6 a round boundary.
class RoundTrip : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(RoundTrip, ResumedRunContinuesBitForBit) {
  const auto& [stop, compressor] = GetParam();
  const int H = 3, last = 4 * H;
  DataParallelOptions options = options_for("diloco", H);
  if (compressor != "none") {
    options.compression.compression.name = compressor;
    options.compression.compression.ratio = 0.3;
    options.compression.error_feedback = "ef";  // per-rank residuals are state too
  }
  Replica whole(options, 0.9);
  whole.train(0, last);

  Replica first(options, 0.9);
  first.train(0, stop);
  const Replica::Saved saved = first.save();

  Replica second(options, 0.9);
  second.restore(saved);
  EXPECT_EQ(second.strategy().parameters_replicated(), stop % H == 0);
  second.train(stop, last);

  EXPECT_EQ(second.losses, whole.losses) << "rank " << world->rank();
  EXPECT_EQ(max_relative_difference(*second.model, *whole.model), 0.0);
}

INSTANTIATE_TEST_SUITE_P(MidRoundAndBoundary, RoundTrip,
                         ::testing::Combine(::testing::Values(4, 6),
                                            ::testing::Values("none", "topk")),
                         [](const auto& info) {
                           return "stop" + std::to_string(std::get<0>(info.param)) + "_" +
                                  std::get<1>(info.param);
                         });

TEST(State, WithoutAnchorsIsRefused) {
  Replica run(options_for("diloco", 3), 0.9);
  NamedTensors allreduce_state{{"steps", at::scalar_tensor(6, at::kLong)}};
  EXPECT_THROW(run.dp->strategy().load_state(allreduce_state), CheckpointError);
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) { return braid::test::run_mpi_tests(&argc, &argv, braid::world); }
