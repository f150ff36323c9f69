// Tier 1: threads as ranks. train.nonfinite (optimizers/nonfinite_guard.h): one rank injects a
// NaN into one gradient at step 5 (at step 0 for ef21 and econtrol, whose first exchange is a
// dense start), for every strategy and every compressor it takes, under both policies:
//  - error: every rank raises NonFiniteError naming the rank, the parameter and step 5;
//  - skip: the run goes on with finite parameters, and the skip is counted. Synchronous
//    strategies skip the step on every rank with parameters and strategy state (residuals,
//    momenta) bitwise as before it; a local-update rank leaves its own parameters as they were.
// 1-bit Adam in its compression phase (the optimizer exchanges for itself) is a case too. The
// injected parameter is the first layer's weight, which sits in the last of three buckets, so
// a compressed allreduce has exchanged (and must restore) two buckets before it sees the flag.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"
#include "optimizers/onebit_adam.h"
#include "runtime/data_parallel.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::spawn_ranks;

constexpr int kRanks = 3, kSteps = 12, kInject = 5, kH = 4;
constexpr const char* kParameter = "0.weight";

struct Case {
  std::string strategy, compressor, feedback = "none";
  bool onebit_adam = false;  // 1-bit Adam, compressing (exchanging for itself) from step 2
  int inject = kInject;      // the step whose gradient gets the NaN
};

std::string name_of(const Case& c, const std::string& policy) {
  return c.strategy + "/" + c.compressor + "/" + c.feedback +
         (c.onebit_adam ? "/onebit_adam/" : "/") + policy;
}

bool synchronous(const std::string& strategy) {
  return strategy == "allreduce" || strategy == "gradient_coding";
}

// The root of gradient coding always uses its own message (a late rank's may go unused).
int injecting_rank(const Case& c) { return c.strategy == "gradient_coding" ? 0 : 1; }

std::vector<Case> cases() {
  std::vector<Case> all;
  for (const char* compressor :
       {"none", "fp16", "bf16", "qsgd", "topk", "randomk", "sign", "dgc", "powersgd"}) {
    const std::string name = compressor;
    const bool lossy = name != "none" && name != "fp16" && name != "bf16" && name != "dgc";
    all.push_back({"allreduce", name, lossy ? "ef" : "none"});
    if (name == "dgc") continue;  // dgc is a gradient compressor of the allreduce strategy
    for (const char* local : {"local_sgd", "diloco", "streaming_diloco", "co2"})
      all.push_back({local, name, lossy ? "ef" : "none"});
  }
  all.push_back({"allreduce", "none", "ef21"});  // error feedback without a compressor
  // A skipped dense start (compression.estimate_init: gradient) must start again next step.
  for (const char* feedback : {"ef21", "econtrol"})
    all.push_back({"allreduce", "topk", feedback, false, /*inject=*/0});
  all.push_back({"streaming_diloco", "none", "none"});
  all.back().compressor = "none-bf16-wire";
  all.push_back({"gradient_coding", "none"});
  all.push_back({"allreduce", "none", "none", /*onebit_adam=*/true});
  return all;
}

DataParallelOptions options_for(const Case& c, const std::string& policy) {
  DataParallelOptions o;
  o.strategy = c.strategy;
  o.algorithm = "ring";
  o.bucket_mb = 300.0 / (1 << 20);  // three buckets: {2.bias, 2.weight}, {0.bias}, {0.weight}
  o.nonfinite = policy;
  const bool wire = c.compressor == "none-bf16-wire";
  o.compression.compression.name = wire ? "none" : c.compressor;
  o.compression.compression.ratio = 0.25;
  o.compression.error_feedback = c.feedback;
  o.outer.steps = kH;
  o.outer.fragments = 2;
  o.outer.delay_steps = 1;
  const bool compressed = o.compression.compression.name != "none" || c.feedback != "none";
  o.outer.wire = wire ? "bfloat16" : compressed ? "float32" : "e3m0";
  o.coding_scheme = "cyclic";
  o.coding_stragglers = 1;
  return o;
}

torch::nn::Sequential make_model() {
  torch::manual_seed(7);
  return torch::nn::Sequential(torch::nn::Linear(8, 16), torch::nn::ReLU(),
                               torch::nn::Linear(16, 4));
}

at::Tensor parameter(const NamedTensors& named, const std::string& name) {
  for (const auto& [n, t] : named)
    if (n == name) return t;
  ADD_FAILURE() << "no parameter " << name;
  return {};
}

std::vector<at::Tensor> copies(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& t : tensors) out.push_back(t.detach().clone());
  return out;
}

bool equal(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!at::equal(a[i], b[i])) return false;
  return true;
}

// The strategy's state without its step clock, cloned.
NamedTensors learned_state(SyncStrategy& strategy) {
  NamedTensors out;
  for (const auto& [name, t] : strategy.state())
    if (name != "steps") out.emplace_back(name, t.clone());
  return out;
}

bool equal(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || !at::equal(a[i].second, b[i].second)) return false;
  return true;
}

bool all_finite(const std::vector<at::Tensor>& tensors) {
  for (const at::Tensor& t : tensors)
    if (!at::isfinite(t).all().item<bool>()) return false;
  return true;
}

// What one rank saw.
struct Outcome {
  int failed_at = -1;  // the step whose dp.step() threw NonFiniteError, or -1
  std::string message;
  std::int64_t skipped = 0;
  bool finite = false;
  bool untouched = false;  // skip: the injected step left parameters (and, synchronous, state)
};

// One forward and backward of this rank's partitions of step `step` (synthetic data, seeded by
// step and partition).
void backward(torch::nn::Sequential& model, SyncStrategy& strategy, int step, int rank) {
  const BatchAssignment a = strategy.assign_batch(step, rank, kRanks);
  if (!strategy.wants_gradients()) return;
  for (std::size_t k = 0; k < a.partitions.size(); ++k) {
    torch::manual_seed(1000 * step + a.partitions[k]);
    const at::Tensor x = torch::randn({6, 8}), y = torch::randn({6, 4});
    (torch::mse_loss(model->forward(x), y) * a.weights[k]).backward();
  }
}

// Trains kSteps steps; rank injecting_rank(c) puts a NaN into kParameter's gradient at c.inject.
Outcome train(Communicator& comm, const Case& c, const std::string& policy) {
  std::shared_ptr<Communicator> shared(&comm, [](Communicator*) {});
  torch::nn::Sequential model = make_model();
  const NamedTensors named = named_parameters(*model);
  int step = 0;
  const bool injects = comm.rank() == injecting_rank(c);
  // Registered before the strategy's hooks, so theirs see the NaN (allreduce sends buckets
  // from its hooks, during backward).
  parameter(named, kParameter).register_hook([&](const at::Tensor& grad) {
    if (!injects || step != c.inject) return grad;
    at::Tensor bad = grad.clone();
    bad.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
    return bad;
  });
  DataParallel dp(shared, named, options_for(c, policy));
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (c.onebit_adam) {
    OnebitAdamOptions o(0.01);
    o.freeze_step = 2;
    auto onebit = std::make_unique<OnebitAdam>(model->parameters(), o);
    dp.strategy().host_optimizer(*onebit);
    optimizer = std::move(onebit);
  } else {
    optimizer = std::make_unique<torch::optim::SGD>(model->parameters(),
                                                    torch::optim::SGDOptions(0.05).momentum(0.9));
  }
  // 1-bit Adam's own state (momentum, worker error) must survive a skipped step too.
  const auto onebit_state = [&] {
    auto* onebit = dynamic_cast<OnebitAdam*>(optimizer.get());
    return onebit ? copies({onebit->momentum(), onebit->worker_error()})
                  : std::vector<at::Tensor>{};
  };
  std::vector<at::Tensor> optimizer_before;
  Outcome out;
  std::vector<at::Tensor> params_before;
  NamedTensors state_before;
  for (; step < kSteps; ++step) {
    if (step == c.inject) {
      params_before = copies(model->parameters());
      if (synchronous(c.strategy)) state_before = learned_state(dp.strategy());
      optimizer_before = onebit_state();
    }
    optimizer->zero_grad();
    backward(model, dp.strategy(), step, comm.rank());
    try {
      dp.step(*optimizer);
    } catch (const NonFiniteError& e) {
      out.failed_at = step;
      out.message = e.what();
      break;
    }
    if (step != c.inject) continue;
    const bool params_kept = equal(copies(model->parameters()), params_before);
    if (synchronous(c.strategy)) {
      out.untouched = params_kept && equal(learned_state(dp.strategy()), state_before) &&
                      equal(onebit_state(), optimizer_before);
    } else {
      out.untouched = params_kept || !injects;  // the other ranks step on
    }
  }
  dp.strategy().quiesce();
  out.skipped = dp.stats().skipped_steps;
  out.finite = all_finite(model->parameters());
  return out;
}

std::vector<Outcome> run(const Case& c, const std::string& policy) {
  std::vector<Outcome> outcomes(kRanks);
  spawn_ranks(kRanks, [&](Communicator& comm) { outcomes[comm.rank()] = train(comm, c, policy); });
  return outcomes;
}

TEST(NonFinite, ErrorStopsEveryRankNamingRankParameterAndStep) {
  for (const Case& c : cases()) {
    const std::string what = name_of(c, "error");
    const std::vector<Outcome> outcomes = run(c, "error");
    const std::string expected = "non-finite gradient on rank " +
                                 std::to_string(injecting_rank(c)) + ": parameter '" + kParameter +
                                 "' at step " + std::to_string(c.inject);
    for (int r = 0; r < kRanks; ++r) {
      const Outcome& o = outcomes[r];
      EXPECT_GE(o.failed_at, c.inject) << what << " rank " << r;
      if (synchronous(c.strategy)) EXPECT_EQ(o.failed_at, c.inject) << what << " rank " << r;
      EXPECT_NE(o.message.find(expected), std::string::npos)
          << what << " rank " << r << ": '" << o.message << "'";
      EXPECT_EQ(o.message, outcomes[0].message) << what << ": one message on every rank";
    }
  }
}

TEST(NonFinite, SkipDropsTheStepAndLeavesStateAsItWas) {
  for (const Case& c : cases()) {
    const std::string what = name_of(c, "skip");
    const std::vector<Outcome> outcomes = run(c, "skip");
    for (int r = 0; r < kRanks; ++r) {
      const Outcome& o = outcomes[r];
      EXPECT_EQ(o.failed_at, -1) << what << " rank " << r << ": " << o.message;
      EXPECT_TRUE(o.finite) << what << " rank " << r;
      EXPECT_TRUE(o.untouched) << what << " rank " << r;
      const bool counts = synchronous(c.strategy) || r == injecting_rank(c);
      EXPECT_EQ(o.skipped, counts ? 1 : 0) << what << " rank " << r;
    }
  }
}

}  // namespace
}  // namespace braid
