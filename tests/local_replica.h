// One rank's float64 training for the local-update strategy tests (local_update_test,
// streaming_diloco_test, co2_test): a seeded mlp, its DataParallel over the world with the
// test's options, inner SGD (lr 0.05), this rank's data plan (batch 8), and the losses it logged.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/data_parallel.h"
#include "runtime/world.h"
#include "tests/training_helpers.h"

namespace braid::test {

template <typename Strategy>
struct LocalReplica {
  static constexpr std::int64_t kBatch = 8;
  static constexpr double kLr = 0.05;

  std::shared_ptr<Model> model;
  std::unique_ptr<DataParallel> dp;
  std::unique_ptr<torch::optim::SGD> optimizer;
  DataPlan plan;
  std::vector<double> losses;

  LocalReplica(World& world, const DataParallelOptions& options, double momentum,
               c10::ScalarType dtype)
      : model(seeded_model("mlp", dtype)),
        dp(std::make_unique<DataParallel>(world, named_parameters(*model), options)),
        optimizer(std::make_unique<torch::optim::SGD>(
            model->parameters(), torch::optim::SGDOptions(kLr).momentum(momentum))),
        plan(fashion().train.size(), world.rank(), world.size(), kBatch, 7) {}

  // Trains steps [first, last); `after` runs after each with the step count.
  template <typename After>
  void train(int first, int last, After after) {
    for (int step = first; step < last; ++step) {
      optimizer->zero_grad();
      losses.push_back(backward_on(*model, plan.batch_indices(0, step)));
      dp->step(*optimizer);
      after(step + 1);
    }
  }
  void train(int first, int last) {
    train(first, last, [](int) {});
  }
  Strategy& strategy() { return dynamic_cast<Strategy&>(dp->strategy()); }

  // What a checkpoint holds, taken after quiesce(): parameters, optimizer and strategy state,
  // and the losses logged so far.
  struct Saved {
    std::vector<at::Tensor> params;
    std::string optimizer;
    NamedTensors state;
    std::vector<double> losses;
  };
  Saved save() {
    dp->strategy().quiesce();
    Saved saved;
    for (const at::Tensor& p : model->parameters()) saved.params.push_back(p.detach().clone());
    torch::serialize::OutputArchive archive;
    optimizer->save(archive);
    std::ostringstream bytes;
    archive.save_to(bytes);
    saved.optimizer = bytes.str();
    for (const auto& [name, tensor] : dp->strategy().state())
      saved.state.emplace_back(name, tensor.clone());
    saved.losses = losses;
    return saved;
  }
  // Continues from `saved` as a resumed run would.
  void restore(const Saved& saved) {
    {
      torch::NoGradGuard no_grad;
      std::vector<at::Tensor> mine = model->parameters();
      for (std::size_t i = 0; i < mine.size(); ++i) mine[i].copy_(saved.params[i]);
    }
    torch::serialize::InputArchive in;
    std::istringstream bytes(saved.optimizer);
    in.load_from(bytes);
    optimizer->load(in);
    dp->strategy().load_state(saved.state);
    losses = saved.losses;
  }
};

// main() of a multi-rank test binary: MPI through World, one torch thread per rank.
inline int run_mpi_tests(int* argc, char*** argv, World*& world) {
  World instance(argc, argv);
  world = &instance;
  at::set_num_threads(1);
  ::testing::InitGoogleTest(argc, *argv);
  return RUN_ALL_TESTS();
}

}  // namespace braid::test
