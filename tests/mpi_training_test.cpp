// Tier 2 training tests under mpirun: P ranks with batch b each must equal one process with
// batch P*b on the same samples (the reference is trained inside each rank, without any
// communication), for mlp and cnn and every allreduce algorithm; a model that differs across
// ranks is refused on every rank.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include "common/error.h"
#include "runtime/data.h"
#include "runtime/data_parallel.h"
#include "runtime/models.h"
#include "runtime/world.h"

namespace braid {
namespace {

World* world = nullptr;

const DataSplits& fashion() {
  static DataSplits data = [] {
    DataConfig config;
    config.path = "/usr/share/datasets/fashion-mnist";
    config.train_limit = 2048;
    config.test_limit = 1;
    return load_data(config, ModelConfig{});
  }();
  return data;
}

std::shared_ptr<Model> seeded_model(const std::string& name, std::int64_t hidden = 64) {
  torch::manual_seed(1234);
  ModelConfig config;
  config.name = name;
  config.hidden = hidden;
  return make_model(config);
}

void train_steps(Model& model, torch::optim::Optimizer& optimizer, DataPlan& plan, int steps,
                 DataParallel* dp) {
  const Dataset& train = fashion().train;
  for (int step = 0; step < steps; ++step) {
    at::Tensor idx = plan.batch_indices(0, step);
    optimizer.zero_grad();
    model.loss(model.forward(train.inputs.index_select(0, idx)), train.targets.index_select(0, idx))
        .backward();
    if (dp) {
      dp->step(optimizer);
    } else {
      optimizer.step();
    }
  }
}

class Equivalence : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(Equivalence, RanksWithBatchBEqualOneProcessWithBatchPB) {
  const auto& [model_name, algorithm] = GetParam();
  const int P = world->size();
  constexpr std::int64_t kBatch = 8;
  constexpr int kSteps = 20;
  const std::int64_t samples = fashion().train.size();

  auto reference = seeded_model(model_name);
  torch::optim::SGD reference_optimizer(reference->parameters(),
                                        torch::optim::SGDOptions(0.05).momentum(0.9));
  DataPlan whole(samples, 0, 1, P * kBatch, 7);
  train_steps(*reference, reference_optimizer, whole, kSteps, nullptr);

  auto model = seeded_model(model_name);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  DataParallelOptions options;
  options.algorithm = algorithm;
  options.bucket_mb = 0.05;  // several buckets, so overlap and ordering are exercised
  options.debug_checks = true;
  DataParallel dp(*world, named_parameters(*model), options);
  DataPlan mine(samples, world->rank(), P, kBatch, 7);
  train_steps(*model, optimizer, mine, kSteps, &dp);

  auto ours = model->named_parameters();
  for (const auto& item : reference->named_parameters()) {
    const at::Tensor& got = ours[item.key()];
    double diff = (got - item.value()).abs().max().item<double>();
    EXPECT_LT(diff, 1e-5) << model_name << " with " << algorithm << ": parameter " << item.key()
                          << " on rank " << world->rank();
  }
}

INSTANTIATE_TEST_SUITE_P(
    ModelsAndAlgorithms, Equivalence,
    ::testing::Combine(::testing::Values("mlp", "cnn"),
                       ::testing::Values("ring", "star", "rhd", "native", "auto")),
    [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

TEST(DataParallel, ModelThatDiffersAcrossRanksIsRefusedOnEveryRank) {
  if (world->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  auto model = seeded_model("mlp", world->rank() == 1 ? 32 : 64);
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
