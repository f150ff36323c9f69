// OnebitAdam: 1-bit Adam (Tang et al., "1-bit Adam: Communication Efficient Large-Scale Training
// with Adam's Convergence Speed", ICML 2021), as a torch optimizer that
// exchanges its own momentum once its variance is frozen (exchanging_optimizer.h).
//
// Update rule, step t = 1, 2, ... (t counts steps taken, freeze_step = F):
//   warm-up, t <= F (gradients averaged by the hosting strategy: g = mean_r g_r):
//     m = b1 m + (1 - b1) g ;  v = b2 v + (1 - b2) g^2
//     x = x - lr ( m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd x )
//   compression, t > F (no gradient allreduce: g_r is this rank's own gradient):
//     m = C_allreduce(b1 m + (1 - b1) g_r)   identical on every rank; v stays frozen
//     m = m * [v > 0]                        (momentum mask, below)
//     x = x - lr ( m / (1 - b1^t) / (sqrt(v / (1 - b2^F)) + eps) + wd x )
// C_allreduce is the two-phase compressed allreduce (compression/two_phase_exchange.h) with
// error feedback at the worker (ErrorFeedback kEf: z = u + e_w, e_w = z - C(z)) and at the
// server (each chunk's owner keeps e_s = y - C(y)), with braid's sign compressor.
//
// Choices, and where they differ from the paper or DeepSpeed:
//  - Bias correction is applied, as in the paper's Adam and torch's AdamW (DeepSpeed stores the
//    flag but applies none). The warm-up phase is exactly torch::optim::AdamW (same operations),
//    so a run with freeze_step beyond its end equals distributed AdamW. In the compression
//    phase v is frozen together with its correction 1 - b2^F: without it, a short warm-up
//    (F = 40 gives 1 - b2^F = 0.04) would freeze a variance 25x too small and take 5x too
//    large steps for the rest of the run. freeze_step 0 leaves v = 0 (denominator eps).
//  - Momentum mask: coordinates whose frozen v is exactly 0 (no gradient in the whole warm-up:
//    unused embedding rows, always-zero inputs) get m = 0 after each exchange. The sign
//    compressor never delivers an exact zero, and m / (sqrt(0) + eps) would move them by
//    lr * scale / eps per step. DeepSpeed leaves this mask (exp_avg_mask)
//    to the user; here it is derived from v. Not applied with freeze_step 0 (all of v is 0).
//  - Weight decay is decoupled and applied outside the preconditioner (DeepSpeed, AdamW), as
//    x *= 1 - lr wd before the Adam step, like torch's AdamW.
//  - The compressor is CompressorSign: one l1 scale per 512-element chunk (contractive),
//    not the paper's single l2 / sqrt(d) scale, which is not contractive.
//  - The momentum is exchanged as one flat tensor, the concatenation of all parameters in
//    registration order (one exchange per step: fewer, larger messages). Parameters without a
//    gradient on a rank count as zero gradient there in the compression phase; in the warm-up
//    a parameter without an averaged gradient is skipped, as torch's Adam does.
//  - One parameter group, all parameters of one floating dtype on the CPU.
//
// State (save()/load(), per rank: the error buffers differ between ranks): step, m, v, the
// worker error (full size) and this rank's server error (its chunk). Saved and restored bit
// for bit, so a resumed run continues the uninterrupted trajectory exactly. At another rank
// count the errors cannot be carried (the chunks change; each rank's error is its own), so they
// start again from zero, as DeepSpeed does at every checkpoint load (its authors found that
// occasional resets leave BERT pre-training's convergence unchanged); step, m and v are the same
// on every rank and come from any rank's file.
// Threads: step() on the training thread; its exchange runs on the communication thread while
// step() waits for it.
#pragma once

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "compression/error_feedback.h"
#include "compression/two_phase_exchange.h"
#include "optimizers/exchanging_optimizer.h"

namespace braid {

class Communicator;

class OnebitAdamOptions : public torch::optim::OptimizerCloneableOptions<OnebitAdamOptions> {
 public:
  explicit OnebitAdamOptions(double lr = 1e-3) : lr(lr) {}
  double get_lr() const override { return lr; }
  void set_lr(const double value) override { lr = value; }

  double lr;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  std::int64_t freeze_step = 100000;  // DeepSpeed's default
};

class OnebitAdam : public torch::optim::Optimizer, public ExchangingOptimizer {
 public:
  OnebitAdam(std::vector<at::Tensor> parameters, const OnebitAdamOptions& options);

  at::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  // CheckpointError when the archive's state does not fit these parameters.
  void load(torch::serialize::InputArchive& archive) override;

  void connect(std::shared_ptr<Communicator> comm) override { comm_ = std::move(comm); }
  bool exchanges_next_step() const override { return steps_ >= options().freeze_step; }
  // The error buffers differ per rank once the compression phase starts. A checkpoint is read
  // before the state it holds is known, so this says false from the start: a 1-bit Adam
  // checkpoint resumes only at the rank count that wrote it.
  bool state_is_replicated() const override { return false; }
  bool per_rank_state_may_reset() const override { return true; }
  void reset_per_rank_state_on_load() override { reset_errors_on_load_ = true; }
  double exchange_wait_s() const override { return exchange_wait_s_; }

  // For tests and metrics: steps taken, and the flat state (undefined before the first step).
  std::int64_t steps() const { return steps_; }
  const at::Tensor& momentum() const { return m_; }
  const at::Tensor& variance() const { return v_; }
  at::Tensor worker_error() const;  // e_w, full size (zeros before the compression phase)
  at::Tensor server_error() const;  // e_s of this rank's chunk (TwoPhaseExchange::chunk)

 private:
  const OnebitAdamOptions& options() const;
  void allocate_state();
  void warmup_step(double lr);
  void compressed_step(double lr);
  void exchange_momentum(const at::Tensor& input);
  at::Tensor flat_gradient() const;
  void check_loaded(const char* name, const at::Tensor& tensor, std::int64_t numel) const;
  at::Tensor view_of(const at::Tensor& flat, std::size_t param) const;

  std::shared_ptr<Communicator> comm_;
  ErrorFeedback worker_{ErrorFeedbackKind::kEf};
  TwoPhaseExchange server_;
  std::vector<std::int64_t> offsets_;  // of each parameter in the flat state
  std::int64_t steps_ = 0;
  at::Tensor m_, v_;
  double exchange_wait_s_ = 0;
  bool reset_errors_on_load_ = false;
};

}  // namespace braid
