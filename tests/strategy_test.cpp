// The allreduce strategy with threads as ranks: parameters that get no gradient (on some ranks
// or all) never hang the step; overlapped and non-overlapped reduction give the same result;
// replicas stay bitwise identical.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <mutex>

#include "common/error.h"
#include "optimizers/replicas.h"
#include "runtime/data_parallel.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::spawn_ranks;

struct TwoHeads : torch::nn::Module {
  torch::nn::Linear body{register_module("body", torch::nn::Linear(8, 8))};
  torch::nn::Linear used{register_module("used", torch::nn::Linear(8, 2))};
  torch::nn::Linear sometimes{register_module("sometimes", torch::nn::Linear(8, 2))};
  torch::nn::Linear never{register_module("never", torch::nn::Linear(8, 2))};
  at::Tensor forward(const at::Tensor& x, bool with_sometimes) {
    at::Tensor h = body(x).relu();
    at::Tensor y = used(h);
    return with_sometimes ? y + sometimes(h) : y;
  }
};

// The default generator is shared by all threads: seeding and initializing a model must not
// interleave with another rank's, or rank 0's initial weights would depend on timing.
std::shared_ptr<TwoHeads> make_seeded(int seed) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  torch::manual_seed(seed);
  return std::make_shared<TwoHeads>();
}

// Trains a few steps on `ranks` threads; rank r uses the "sometimes" head only when r is odd.
std::vector<std::vector<at::Tensor>> train(int ranks, DataParallelOptions options) {
  std::vector<std::vector<at::Tensor>> result(ranks);
  spawn_ranks(ranks, [&](Communicator& comm) {
    auto model = make_seeded(comm.rank());  // different inits: attach must broadcast rank 0's
    torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
    std::shared_ptr<Communicator> shared(&comm, [](Communicator*) {});
    DataParallel dp(shared, named_parameters(*model), options);
    for (int step = 0; step < 4; ++step) {
      at::Tensor x = at::full({4, 8}, 0.1 * (comm.rank() + step + 1));
      optimizer.zero_grad();
      model->forward(x, comm.rank() % 2 == 1).sum().backward();
      dp.step(optimizer);
    }
    check_replicas_identical(comm, model->parameters());
    for (const auto& p : model->parameters()) result[comm.rank()].push_back(p.detach().clone());
  });
  return result;
}

TEST(AllreduceStrategy, UnusedParametersDoNotHangAndReplicasStayIdentical) {
  for (bool overlap : {true, false}) {
    DataParallelOptions options;
    options.bucket_mb = 0.0001;  // one bucket per parameter tensor
    options.overlap = overlap;
    options.debug_checks = true;
    auto params = train(3, options);
    ASSERT_EQ(params[0].size(), 8u);
  }
}

TEST(AllreduceStrategy, OverlapDoesNotChangeTheResult) {
  DataParallelOptions overlapped, deferred;
  overlapped.bucket_mb = deferred.bucket_mb = 0.0005;
  deferred.overlap = false;
  auto a = train(2, overlapped), b = train(2, deferred);
  for (std::size_t i = 0; i < a[0].size(); ++i) EXPECT_TRUE(at::equal(a[0][i], b[0][i])) << i;
}

// The averaged gradient of body.weight that rank 0's optimizer sees at each of 4 steps.
std::vector<at::Tensor> averaged_gradients(DataParallelOptions options) {
  std::vector<at::Tensor> seen;
  spawn_ranks(2, [&](Communicator& comm) {
    auto model = make_seeded(comm.rank());
    torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1));
    std::shared_ptr<Communicator> shared(&comm, [](Communicator*) {});
    DataParallel dp(shared, named_parameters(*model), options);
    for (int step = 0; step < 4; ++step) {
      // Deterministic inputs (the default generator is shared by the threads).
      const double scale = 0.37 + 0.11 * comm.rank() + 0.05 * step;
      at::Tensor x = (at::arange(32, at::kFloat).reshape({4, 8}) * scale).sin();
      optimizer.zero_grad();
      model->forward(x, true).pow(2).sum().backward();
      dp.step(optimizer);
      if (comm.rank() == 0) seen.push_back(model->body->weight.grad().clone());
    }
  });
  return seen;
}

// compression.dense_steps: the first steps are the plain average, bit for bit; then PowerSGD's
// rank-1 approximation of the 8x8 weight's gradient differs from it. Without dense steps the
// first step already differs (the control).
TEST(AllreduceStrategy, DenseStepsAverageExactlyThenCompress) {
  DataParallelOptions plain;
  plain.algorithm = "ring";
  DataParallelOptions powersgd = plain;
  powersgd.compression.compression.name = "powersgd";
  powersgd.compression.compression.rank = 1;
  powersgd.compression.error_feedback = "ef";
  DataParallelOptions warmed = powersgd;
  warmed.compression.dense_steps = 2;
  const auto exact = averaged_gradients(plain), dense_first = averaged_gradients(warmed),
             compressed = averaged_gradients(powersgd);
  EXPECT_TRUE(at::equal(dense_first[0], exact[0]));
  EXPECT_TRUE(at::equal(dense_first[1], exact[1]));
  EXPECT_FALSE(at::allclose(dense_first[2], exact[2], 1e-3, 1e-3));
  EXPECT_FALSE(at::allclose(compressed[0], exact[0], 1e-3, 1e-3));
}

// On one node the gradient buckets lie in shared memory and "auto" reduces them with shm in
// place: the steps send nothing over the network and read peers' buckets instead. Naming "ring"
// is the control: network bytes, no shared-memory reads. Both train the same model.
TEST(AllreduceStrategy, BucketsOnOneNodeAreReducedInSharedMemory) {
  for (const char* algorithm : {"auto", "ring"}) {
    std::vector<std::uint64_t> network(2), shared(2);
    std::vector<at::Tensor> first(2);
    spawn_ranks(2, [&](Communicator& comm) {
      auto model = make_seeded(7);
      torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1));
      std::shared_ptr<Communicator> shared_comm(&comm, [](Communicator*) {});
      DataParallelOptions options;
      options.algorithm = algorithm;
      options.bucket_mb = 0.0005;
      DataParallel dp(shared_comm, named_parameters(*model), options);
      const std::uint64_t sent = comm.bytes_sent(), read = comm.shared_memory_bytes();
      for (int step = 0; step < 3; ++step) {
        optimizer.zero_grad();
        model->forward(at::full({4, 8}, 0.1 * (comm.rank() + step + 1)), true).sum().backward();
        dp.step(optimizer);
      }
      network[comm.rank()] = comm.bytes_sent() - sent;
      shared[comm.rank()] = comm.shared_memory_bytes() - read;
      EXPECT_EQ(dp.stats().bytes_shared, comm.shared_memory_bytes());  // what `done:` reports
      first[comm.rank()] = model->parameters()[0].detach().to(at::kDouble).clone();
    });
    for (int r = 0; r < 2; ++r) {
      if (std::string(algorithm) == "auto") {
        EXPECT_EQ(network[r], 0u) << r;
        EXPECT_GT(shared[r], 0u) << r;
      } else {
        EXPECT_GT(network[r], 0u) << r;
        EXPECT_EQ(shared[r], 0u) << r;
      }
    }
    EXPECT_TRUE(at::equal(first[0], first[1])) << algorithm;
  }
}

TEST(AllreduceStrategy, NeverUsedParameterStaysAtItsInitialValueWithPlainSgd) {
  spawn_ranks(2, [](Communicator& comm) {
    auto model = make_seeded(comm.rank());
    torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1));
    std::shared_ptr<Communicator> shared(&comm, [](Communicator*) {});
    DataParallel dp(shared, named_parameters(*model));
    at::Tensor before = model->never->weight.detach().clone();  // rank 0's, after the broadcast
    at::Tensor used_before = model->used->weight.detach().clone();
    optimizer.zero_grad();
    model->forward(at::ones({2, 8}), true).sum().backward();
    dp.step(optimizer);
    EXPECT_TRUE(at::equal(model->never->weight, before));
    EXPECT_FALSE(at::equal(model->used->weight, used_before));
  });
}

// As in PyTorch DDP: a parameter no rank computed a gradient for gets no optimizer step, so
// neither momentum nor weight decay moves it; one that some rank used is updated everywhere.
TEST(AllreduceStrategy, ParameterUnusedOnEveryRankGetsNoMomentumOrWeightDecayStep) {
  spawn_ranks(3, [](Communicator& comm) {
    auto model = make_seeded(comm.rank());
    torch::optim::SGD optimizer(model->parameters(),
                                torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(0.1));
    std::shared_ptr<Communicator> shared(&comm, [](Communicator*) {});
    DataParallelOptions options;
    options.bucket_mb = 0.0001;
    DataParallel dp(shared, named_parameters(*model), options);
    at::Tensor never_before = model->never->weight.detach().clone();
    at::Tensor sometimes_before = model->sometimes->weight.detach().clone();
    for (int step = 0; step < 3; ++step) {
      optimizer.zero_grad();
      model->forward(at::ones({2, 8}), comm.rank() == 1).sum().backward();
      dp.step(optimizer);
    }
    EXPECT_TRUE(at::equal(model->never->weight, never_before)) << "rank " << comm.rank();
    EXPECT_FALSE(model->never->weight.grad().defined());
    EXPECT_FALSE(at::equal(model->sometimes->weight, sometimes_before)) << "rank " << comm.rank();
    check_replicas_identical(comm, model->parameters());
  });
}

// Buffers of any dtype reach every rank: a bool mask and int16 indices differ across ranks
// before construction and hold rank 0's values after it (a broadcast copies bytes).
TEST(DataParallel, BuffersOfAnyDtypeGetRankZerosValues) {
  spawn_ranks(2, [](Communicator& comm) {
    torch::nn::Linear model(2, 2);
    at::Tensor mask = at::full({3, 3}, comm.rank() == 0, at::kBool);
    at::Tensor index = at::full({4}, 7 + comm.rank(), at::kShort);
    model->register_buffer("mask", mask);
    model->register_buffer("index", index);
    std::shared_ptr<Communicator> shared(&comm, [](Communicator*) {});
    DataParallel dp(shared, *model);
    EXPECT_TRUE(mask.all().item<bool>()) << "rank " << comm.rank();
    EXPECT_TRUE(at::equal(index, at::full({4}, 7, at::kShort))) << "rank " << comm.rank();
  });
}

// optimizer.clip_norm: the averaged gradient is clipped to the global norm before the step, on
// every rank alike; without clipping the same step moves the weights farther (control).
TEST(AllreduceStrategy, ClipNormBoundsTheAveragedGradient) {
  for (double clip : {0.0, 0.01}) {
    spawn_ranks(2, [&](Communicator& comm) {
      auto model = make_seeded(comm.rank());
      torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(1.0));
      std::shared_ptr<Communicator> shared(&comm, [](Communicator*) {});
      DataParallelOptions options;
      options.clip_norm = clip;
      DataParallel dp(shared, named_parameters(*model), options);
      std::vector<at::Tensor> before;
      for (const auto& p : model->parameters()) before.push_back(p.detach().clone());
      optimizer.zero_grad();
      model->forward(at::full({4, 8}, 1.0 + comm.rank()), true).sum().backward();
      dp.step(optimizer);
      double moved = 0;  // lr 1: the step is the (clipped) gradient
      for (std::size_t i = 0; i < before.size(); ++i) {
        moved += (model->parameters()[i] - before[i]).to(at::kDouble).pow(2).sum().item<double>();
      }
      if (clip > 0) {
        EXPECT_LE(std::sqrt(moved), clip * (1 + 1e-5));
      } else {
        EXPECT_GT(std::sqrt(moved), 1.0);  // the unclipped gradient is far larger
      }
      check_replicas_identical(comm, model->parameters());
    });
  }
}

// sync.broadcast_buffers: running statistics that forward passes on different data change
// differently end equal on every rank after each step; without it they drift apart (control).
// Ranks seeded alike send only checksums; ranks that differ get rank 0's values.
TEST(Replicas, MakeIdenticalSendsTheValuesOnlyWhenSomeRankDiffers) {
  for (bool differ : {false, true}) {
    spawn_ranks(3, [&](Communicator& comm) {
      auto model = make_seeded(differ && comm.rank() == 2 ? 7 : 1);
      std::vector<at::Tensor> params = model->parameters();
      const std::uint64_t before = comm.bytes_sent();
      if (differ) EXPECT_THROW(check_replicas_identical(comm, params), CommError);
      make_replicas_identical(comm, params, 0);
      const std::uint64_t sent = comm.bytes_sent() - before;
      EXPECT_NO_THROW(check_replicas_identical(comm, params));
      EXPECT_TRUE(params[0].equal(make_seeded(1)->parameters()[0]));
      std::int64_t values = 0;
      for (const auto& p : params) values += p.numel() * 4;
      if (differ && comm.rank() == 0) EXPECT_GE(sent, static_cast<std::uint64_t>(values));
      if (!differ) EXPECT_LT(sent, 64u) << "only checksums";
    });
  }
}

TEST(DataParallelBuffers, BroadcastKeepsRunningStatisticsEqual) {
  for (bool broadcast : {true, false}) {
    std::vector<at::Tensor> means(2);
    spawn_ranks(2, [&](Communicator& comm) {
      torch::nn::BatchNorm1d norm(4);
      torch::optim::SGD optimizer(norm->parameters(), torch::optim::SGDOptions(0.1));
      std::shared_ptr<Communicator> shared(&comm, [](Communicator*) {});
      DataParallelOptions options;
      options.broadcast_buffers = broadcast;
      DataParallel dp(shared, named_parameters(*norm), options, named_buffers(*norm));
      for (int step = 0; step < 3; ++step) {
        optimizer.zero_grad();
        norm->forward(at::full({8, 4}, 1.0 + 10 * comm.rank()) + at::arange(8).view({8, 1}))
            .pow(2)
            .sum()
            .backward();
        dp.step(optimizer);
      }
      means[comm.rank()] = norm->running_mean.clone();
    });
    EXPECT_EQ(at::equal(means[0], means[1]), broadcast) << "broadcast_buffers " << broadcast;
  }
}

}  // namespace
}  // namespace braid
