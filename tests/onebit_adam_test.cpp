// 1-bit Adam (Tang et al., ICML 2021; optimizers/onebit_adam.h) with threads as ranks, in float64:
//  - with freeze_step beyond the run it is distributed AdamW (same bias correction), and a run
//    that freezes early is not (negative control);
//  - in the compression phase the momentum is bitwise the same on every rank, and the worker and
//    server error buffers satisfy the error-feedback identity after every step:
//      sum_t out_t + mean_r e_worker_r + e_server == mean_r sum_t u_r,t
//    (u_r,t = b1 m + (1 - b1) g_r,t what rank r compressed, out_t the exchanged momentum);
//  - no gradient allreduce runs in the compression phase: a step sends under d/4 bytes for d
//    float64 parameters, while a warm-up step sends the dense 2(P-1)/P * 8d;
//  - coordinates with no gradient in the warm-up (v = 0) get a masked momentum;
//  - save()/load() in the compression phase continues the trajectory bit for bit;
//  - optimizer.freeze_step is validated and part of the resume fingerprint of onebit_adam only.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <sstream>

#include "common/error.h"
#include "compression/two_phase_exchange.h"
#include "optimizers/onebit_adam.h"
#include "runtime/config.h"
#include "runtime/data_parallel.h"
#include "runtime/resume_fingerprint.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::spawn_ranks;
constexpr double kLr = 0.01, kWd = 0.1;

// Three float64 parameters, the same on every rank (d = 20000 + 37 + 3000 elements).
std::vector<at::Tensor> make_params() {
  std::vector<at::Tensor> params;
  for (std::int64_t n : {20000, 37, 3000}) {
    params.push_back(
        at::sin(at::arange(n, at::kDouble) * 0.013 + static_cast<double>(n)).requires_grad_());
  }
  return params;
}

std::int64_t total_numel(const std::vector<at::Tensor>& params) {
  std::int64_t d = 0;
  for (const at::Tensor& p : params) d += p.numel();
  return d;
}

// Rank r's loss at `step`: a quadratic pull towards a rank- and step-dependent target plus a
// cubic term, so gradients depend on the parameters and differ between ranks.
void backward(const std::vector<at::Tensor>& params, int rank, int step) {
  at::Tensor loss = at::zeros({}, at::kDouble);
  for (const at::Tensor& p : params) {
    at::Tensor target = at::cos(at::arange(p.numel(), at::kDouble) * 0.7 + rank + 0.3 * step);
    loss = loss + 0.5 * (p - target).pow(2).sum() + 0.05 * p.pow(3).sum();
  }
  loss.backward();
}

at::Tensor flat(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> parts;
  for (const at::Tensor& t : tensors) parts.push_back(t.detach().reshape(-1));
  return at::cat(parts);
}

at::Tensor flat_grad(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : params) grads.push_back(p.grad());
  return flat(grads);
}

NamedTensors named(const std::vector<at::Tensor>& params) {
  NamedTensors out;
  for (std::size_t i = 0; i < params.size(); ++i) out.emplace_back(str_cat("p", i), params[i]);
  return out;
}

std::shared_ptr<Communicator> borrow(Communicator& comm) {
  return std::shared_ptr<Communicator>(&comm, [](Communicator*) {});
}

OnebitAdamOptions onebit_options(std::int64_t freeze_step) {
  OnebitAdamOptions o(kLr);
  o.weight_decay = kWd;
  o.freeze_step = freeze_step;
  return o;
}

// Called on each rank after each step with the optimizer, the momentum before the step and
// the bytes this rank sent during the step (backward included: hooks launch buckets there).
using Observer =
    std::function<void(int rank, int step, OnebitAdam&, const std::vector<at::Tensor>& params,
                       const at::Tensor& m_before, std::uint64_t bytes)>;

// Every run reduces its warm-up steps with ring: the same order in every run (for bitwise
// comparisons) and network bytes to count (on one node "auto" would read shared memory).
DataParallelOptions ring() {
  DataParallelOptions options;
  options.algorithm = "ring";
  return options;
}

// Final parameters (flat) of every rank after `steps` steps of 1-bit Adam.
std::vector<at::Tensor> run_onebit(int ranks, int steps, std::int64_t freeze_step,
                                   const Observer& observe = {}) {
  std::vector<at::Tensor> result(ranks);
  spawn_ranks(ranks, [&](Communicator& comm) {
    std::vector<at::Tensor> params = make_params();
    OnebitAdam optimizer(params, onebit_options(freeze_step));
    // Ring: warm-up steps then send network bytes to count (on one node "auto" reads shared
    // memory).
    DataParallelOptions options;
    options.algorithm = "ring";
    DataParallel dp(borrow(comm), named(params), options);
    dp.strategy().host_optimizer(optimizer);
    for (int step = 0; step < steps; ++step) {
      at::Tensor m_before = optimizer.momentum().defined()
                                ? optimizer.momentum().clone()
                                : at::zeros({total_numel(params)}, at::kDouble);
      const std::uint64_t sent = comm.bytes_sent();
      optimizer.zero_grad();
      backward(params, comm.rank(), step);
      dp.step(optimizer);
      if (observe)
        observe(comm.rank(), step, optimizer, params, m_before, comm.bytes_sent() - sent);
    }
    result[comm.rank()] = flat(params);
  });
  return result;
}

// Distributed AdamW: torch's optimizer on gradients averaged by the allreduce strategy.
at::Tensor run_adamw(int ranks, int steps) {
  std::vector<at::Tensor> result(ranks);
  spawn_ranks(ranks, [&](Communicator& comm) {
    std::vector<at::Tensor> params = make_params();
    torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(kLr).weight_decay(kWd));
    DataParallel dp(borrow(comm), named(params), ring());
    for (int step = 0; step < steps; ++step) {
      optimizer.zero_grad();
      backward(params, comm.rank(), step);
      dp.step(optimizer);
    }
    result[comm.rank()] = flat(params);
  });
  return result[0];
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

TEST(OnebitAdam, FreezeStepBeyondTheRunIsDistributedAdamW) {
  const int ranks = 3, steps = 8;
  const at::Tensor adamw = run_adamw(ranks, steps);
  const std::vector<at::Tensor> onebit = run_onebit(ranks, steps, /*freeze_step=*/steps);
  // The same operations in the same order: equal up to float64 rounding of |x| <= ~2 per step.
  const double tol = 1e-13;
  for (int r = 0; r < ranks; ++r) EXPECT_LE(max_abs_diff(onebit[r], adamw), tol) << "rank " << r;
  // Negative control: freezing after 3 steps compresses the momentum of the last 5.
  const std::vector<at::Tensor> frozen = run_onebit(ranks, steps, /*freeze_step=*/3);
  EXPECT_GT(max_abs_diff(frozen[0], adamw), 1e-6);
}

// The per-step records of one rank in the compression phase.
struct Records {
  std::vector<at::Tensor> u, out, worker_error, server_error;
  std::vector<std::uint64_t> bytes;
};

void check_error_feedback_identity(int ranks) {
  const int steps = 7, freeze = 2;
  std::vector<Records> records(ranks);
  std::vector<std::uint64_t> warmup_bytes(ranks);
  const OnebitAdamOptions o = onebit_options(freeze);
  const std::vector<at::Tensor> final_params =
      run_onebit(ranks, steps, freeze,
                 [&](int rank, int step, OnebitAdam& opt, const std::vector<at::Tensor>& params,
                     const at::Tensor& m_before, std::uint64_t bytes) {
                   if (step < freeze) {
                     warmup_bytes[rank] = bytes;
                     return;
                   }
                   // .grad holds this rank's own gradient in the compression phase.
                   Records& rec = records[rank];
                   rec.u.push_back(m_before.mul(o.beta1).add_(flat_grad(params), 1 - o.beta1));
                   rec.out.push_back(opt.momentum().clone());
                   rec.worker_error.push_back(opt.worker_error().clone());
                   rec.server_error.push_back(opt.server_error().clone());
                   rec.bytes.push_back(bytes);
                 });
  const std::int64_t d = final_params[0].numel();
  for (int r = 1; r < ranks; ++r) {
    EXPECT_TRUE(at::equal(final_params[r], final_params[0])) << "parameters of rank " << r;
  }
  at::Tensor sum_out = at::zeros({d}, at::kDouble), sum_u = at::zeros({d}, at::kDouble);
  for (std::size_t t = 0; t < records[0].out.size(); ++t) {
    for (int r = 1; r < ranks; ++r) {
      ASSERT_TRUE(at::equal(records[r].out[t], records[0].out[t])) << "step " << t << " rank " << r;
    }
    at::Tensor worker = at::zeros({d}, at::kDouble), server = at::zeros({d}, at::kDouble);
    for (int r = 0; r < ranks; ++r) {
      sum_u += records[r].u[t] / ranks;
      worker += records[r].worker_error[t] / ranks;
      auto [offset, count] = TwoPhaseExchange::chunk(d, ranks, r);
      server.narrow(0, offset, count).copy_(records[r].server_error[t]);
    }
    sum_out += records[0].out[t];
    // Every term is a sum of at most a few dozen float64 values of magnitude <= ~3.
    const double scale = 1 + sum_u.abs().max().item<double>();
    const double tol = 1e-13 * scale * (t + 1);
    EXPECT_LE(max_abs_diff(sum_out + worker + server, sum_u), tol) << "after compressed step " << t;
    // Negative control: without the server residual the identity does not hold.
    EXPECT_GT(max_abs_diff(sum_out + worker, sum_u), 1e3 * tol) << "after compressed step " << t;
  }
  // No gradient allreduce: one step of d float64 elements sends under d / 4 bytes, while a
  // warm-up step sends the dense ring allreduce's 2 (P-1)/P * 8 d.
  for (int r = 0; r < ranks; ++r) {
    for (std::uint64_t bytes : records[r].bytes) EXPECT_LT(bytes, d / 4) << "rank " << r;
    EXPECT_GE(warmup_bytes[r], 2 * (ranks - 1) * 8 * d / ranks) << "rank " << r;
  }
}

TEST(OnebitAdam, ErrorFeedbackIdentityAndIdenticalMomentumOnFourRanks) {
  check_error_feedback_identity(4);
}

TEST(OnebitAdam, ErrorFeedbackIdentityAndIdenticalMomentumOnThreeRanks) {
  check_error_feedback_identity(3);  // d is not a multiple of 3: uneven chunks
}

// Stops after `stop` steps, saves, and continues `steps - stop` steps on fresh objects that
// load the state: the parameters end bitwise where an uninterrupted run ends. Negative control:
// a resume from m, v and the step alone (DeepSpeed resets the error buffers on load) does not.
// reset_per_rank_state_on_load() (a resume at another rank count) is exactly that resume: the
// full archive loads as if it held m, v and the step alone.
TEST(OnebitAdam, SaveAndLoadContinueTheTrajectoryBitForBit) {
  const int ranks = 3, steps = 7, stop = 4, freeze = 2;
  const std::vector<at::Tensor> uninterrupted = run_onebit(ranks, steps, freeze);
  std::vector<at::Tensor> resumed(ranks), without_errors(ranks), reset(ranks);
  spawn_ranks(ranks, [&](Communicator& comm) {
    std::vector<at::Tensor> params = make_params();
    std::ostringstream saved, saved_without_errors;
    {
      OnebitAdam optimizer(params, onebit_options(freeze));
      DataParallel dp(borrow(comm), named(params), ring());
      dp.strategy().host_optimizer(optimizer);
      for (int step = 0; step < stop; ++step) {
        optimizer.zero_grad();
        backward(params, comm.rank(), step);
        dp.step(optimizer);
      }
      torch::serialize::OutputArchive archive, partial;
      optimizer.save(archive);
      archive.save_to(saved);
      partial.write("steps", at::scalar_tensor(optimizer.steps(), at::kLong));
      partial.write("m", optimizer.momentum());
      partial.write("v", optimizer.variance());
      partial.save_to(saved_without_errors);
    }
    auto continue_from = [&](const std::string& bytes, bool reset_errors) {
      std::vector<at::Tensor> restored;
      for (const at::Tensor& p : params) restored.push_back(p.detach().clone().requires_grad_());
      OnebitAdam optimizer(restored, onebit_options(freeze));
      DataParallel dp(borrow(comm), named(restored), ring());
      dp.strategy().host_optimizer(optimizer);
      torch::serialize::InputArchive archive;
      std::istringstream in(bytes);
      archive.load_from(in);
      if (reset_errors) optimizer.reset_per_rank_state_on_load();
      optimizer.load(archive);
      EXPECT_EQ(optimizer.steps(), stop);
      for (int step = stop; step < steps; ++step) {
        optimizer.zero_grad();
        backward(restored, comm.rank(), step);
        dp.step(optimizer);
      }
      return flat(restored);
    };
    resumed[comm.rank()] = continue_from(saved.str(), false);
    without_errors[comm.rank()] = continue_from(saved_without_errors.str(), false);
    reset[comm.rank()] = continue_from(saved.str(), true);
  });
  for (int r = 0; r < ranks; ++r) {
    EXPECT_TRUE(at::equal(resumed[r], uninterrupted[r])) << "rank " << r;
    EXPECT_FALSE(at::equal(without_errors[r], uninterrupted[r])) << "rank " << r;
    EXPECT_TRUE(at::equal(reset[r], without_errors[r])) << "rank " << r;
  }
}

// A parameter whose gradient is exactly zero through the warm-up freezes with v = 0; its
// momentum is masked afterwards, so it moves only by weight decay. Negative control: the other
// parameter does move by more than that.
TEST(OnebitAdam, CoordinatesWithoutGradientInTheWarmupOnlyDecay) {
  const int steps = 6, freeze = 2;
  spawn_ranks(3, [&](Communicator& comm) {
    std::vector<at::Tensor> params = {at::linspace(-1, 1, 1000, at::kDouble).requires_grad_(),
                                      at::linspace(-1, 1, 600, at::kDouble).requires_grad_()};
    const at::Tensor start = params[1].detach().clone();
    OnebitAdam optimizer(params, onebit_options(freeze));
    DataParallel dp(borrow(comm), named(params), ring());
    dp.strategy().host_optimizer(optimizer);
    for (int step = 0; step < steps; ++step) {
      optimizer.zero_grad();
      at::Tensor target = at::cos(at::arange(1000, at::kDouble) + comm.rank() + step);
      (0.5 * (params[0] - target).pow(2).sum() + 0 * params[1].sum()).backward();
      dp.step(optimizer);
    }
    const at::Tensor decayed = start * std::pow(1 - kLr * kWd, steps);
    EXPECT_LE(max_abs_diff(params[1].detach(), decayed), 1e-15);
    EXPECT_TRUE(optimizer.momentum().narrow(0, 1000, 600).eq(0).all().item<bool>());
    EXPECT_GT(max_abs_diff(params[0].detach(), at::linspace(-1, 1, 1000, at::kDouble)), 1e-3);
  });
}

// After the freeze the optimizer exchanges inside step(): those waits are the strategy's exposed
// communication (metrics' comm_ms), not hidden from it. In the warm-up it waits for nothing.
TEST(OnebitAdam, ItsExchangeWaitsCountAsExposedCommunication) {
  spawn_ranks(2, [&](Communicator& comm) {
    std::vector<at::Tensor> params = make_params();
    OnebitAdam optimizer(params, onebit_options(/*freeze_step=*/2));
    DataParallel dp(borrow(comm), named(params), ring());
    dp.strategy().host_optimizer(optimizer);
    for (int step = 0; step < 4; ++step) {
      optimizer.zero_grad();
      backward(params, comm.rank(), step);
      dp.step(optimizer);
      if (step == 1) EXPECT_EQ(optimizer.exchange_wait_s(), 0.0);
    }
    EXPECT_GT(optimizer.exchange_wait_s(), 0.0);
    EXPECT_GE(dp.stats().exposed_comm_s, optimizer.exchange_wait_s());
  });
}

TEST(OnebitAdam, StepWithoutHostingIsAClearError) {
  spawn_ranks(2, [](Communicator& comm) {
    std::vector<at::Tensor> params = make_params();
    OnebitAdam optimizer(params, onebit_options(0));
    DataParallel dp(borrow(comm), named(params), ring());
    // Checked before anything is sent, so no backward is needed (and no bucket is in flight).
    EXPECT_THROW(dp.step(optimizer), Error);
  });
}

TEST(OnebitAdamConfig, FreezeStepIsValidatedAndFingerprintedForOnebitAdamOnly) {
  const std::string yaml = "optimizer:\n  name: onebit_adam\n";
  try {
    parse_config(yaml, {"optimizer.freeze_step=-1"}, "x.yaml");
    FAIL() << "freeze_step -1 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer.freeze_step"), std::string::npos) << e.what();
  }
  const Config ok = parse_config(yaml, {"optimizer.freeze_step=40"}, "x.yaml");
  EXPECT_EQ(ok.optimizer.freeze_step, 40);
  auto has_freeze_step = [](const Config& c) {
    for (const auto& [key, value] : resume_fingerprint(c)) {
      if (key == "optimizer.freeze_step") return true;
    }
    return false;
  };
  EXPECT_TRUE(has_freeze_step(ok));
  EXPECT_FALSE(has_freeze_step(parse_config("optimizer:\n  name: adamw\n", {}, "x.yaml")));
}

}  // namespace
}  // namespace braid
