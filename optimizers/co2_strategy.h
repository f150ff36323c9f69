// Co2Strategy: CO2, local updating with one-step-asynchronous outer synchronisation (Sun et al.,
// "CO2: Efficient Distributed Training with Full Communication-Computation Overlap", ICLR 2024,
// arXiv 2401.16265).
//
// Every rank steps its inner optimizer on its own gradients. At the end of round k (every
// H = outer.steps inner steps) rank r, holding its trained parameters theta_r and its round
// start s_r (its parameters when round k began):
//   1. waits for the mean of round k-1's pseudo-gradients, Delta_{k-1}, launched one round ago on
//      a channel of its own, so it overlapped round k's inner steps (round 0 waits for nothing)
//   2. b = clamp(mu b + Delta_{k-1} / (1 + lambda), -phi, phi),  u = lr b (nesterov:
//      lr (Delta / (1 + lambda) + mu b)),  u *= min(1, c / ||u||_2),  anchor -= u
//      (lambda = outer.staleness_penalty, phi = outer.clip_threshold, c = outer.clip_norm; 0
//      turns either clip off; round 0: u = 0)
//   3. delta_r = s_r - theta_r                    round k's pseudo-gradient, launched in the
//                                                 background: its mean is applied at round k+1
//   4. outer.reset hard (the default, the paper's Algorithm 1: x_i = x_out):
//          theta_r = anchor;  s_r = theta_r
//      outer.reset soft: theta_r += anchor - s_r;  s_r = theta_r   (= anchor - delta_r)
// That is the paper's update, anchor_{k+1} = anchor_k - OuterOpt(mean_r delta_{r,k-1} / Lambda),
// consumed one round late. Under the hard reset a round's local progress leaves the live
// parameters at its end and comes back averaged a round later (with one rank, outer SGD lr 1 and
// momentum 0, the parameters trail purely local training by one round). The soft reset keeps
// each round's own progress on top of the anchor for exactly that round, then replaces it by its
// average (with one rank and those outer settings, co2 is plain local training).
//
// Against the reference code (fairscale-CO2):
//  - Outer momentum clipping clamps the momentum buffer element-wise to [-phi, phi], phi 1 by
//    default, as the reference means to (co2_clip_threshold 1, on in fairseq-CO2's GPT-2
//    example); its own clamp discards its result, so there clipping has no effect. Under
//    nesterov the Delta term of the step is not clamped; outer.clip_norm, off by default, bounds
//    the L2 norm of the whole step instead.
//  - The staleness penalty is the constant divisor Lambda = 1 + lambda (the reference's
//    co2_gap_penalty, default 1, is Lambda). The paper's adaptive Lambda_t is not reproduced:
//    its definition (the paper's Sec. 3) could not be retrieved, and the reference code has only
//    the constant. The default lambda 1 (Lambda 2) is measured: with the hard reset and no
//    penalty, a round's pseudo-gradient is computed from an anchor that lacks the previous
//    round's, and applying both overshoots (bench/slowlink_local.sh's char_transformer at 900
//    steps, test loss by lambda: 0: 2.998, 0.5: 2.086, 1: 2.039, 2: 2.076; soft reset, lambda 0:
//    1.990).
//  - The pseudo-gradients, not the parameters, are averaged (the same mean, since every rank's
//    anchor is the same), so the `compression:` section applies to them with error feedback.
//
// Replicas: anchors, outer momentum and the step count are identical on every rank; the
// parameters are not, in general, at any step after the first (parameters_replicated() is true
// only before the first step). The round start s_r is per rank, so the state is not replicated
// and a checkpoint resumes at the same rank count only. quiesce() waits for the round in flight;
// state() then holds its received mean ("pending.<name>"), which the resumed run applies at the
// same step it would have, so resume continues bit for bit. State entries: "steps",
// "anchor.<name>", "start.<name>", "pending.<name>" (when a round is in flight), "outer.*",
// "exchange.*".
//
// Non-finite gradients (train.nonfinite; local_steps.h): an inner step with a non-finite gradient
// is not applied; round k's pseudo-gradient is checked before it is encoded, and the verdict
// travels with it, so every rank learns it at round k+1, where the mean would be applied. Then
// error raises NonFiniteError on every rank, and skip does not apply that mean (anchor and outer
// momentum unchanged; one skipped step). A rank whose own pseudo-gradient was not finite cannot
// continue from its parameters: under skip it restarts from the anchor at once (theta = s_r =
// anchor: nothing of its round is kept).
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "common/work.h"
#include "optimizers/local_update_strategy.h"

namespace braid {

class Co2Strategy : public SyncStrategy {
 public:
  // ConfigError for outer.steps < 1, a negative outer.staleness_penalty, outer.clip_threshold
  // or outer.clip_norm, an unknown outer.reset.
  Co2Strategy(std::shared_ptr<Communicator> comm, LocalUpdateOptions options);
  // Waits for the round in flight rather than aborting it: every rank launched it at the same
  // step, so it completes (or fails at its deadline), while an abort here would leave the peers
  // that are still in it waiting for this rank until their deadline.
  ~Co2Strategy() override;
  const char* name() const override { return "co2"; }
  void attach(const NamedTensors& parameters) override;
  void step(torch::optim::Optimizer& optimizer) override;
  void quiesce() override;
  void set_gradient_sync(bool) override {}
  bool state_is_replicated() const override { return false; }
  bool parameters_replicated() const override { return steps_ == 0; }
  std::vector<at::Tensor> global_parameters() const override { return anchors_; }
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  SyncStats stats() const override;

  const std::vector<at::Tensor>& anchors() const { return anchors_; }
  std::int64_t steps() const { return steps_; }

 private:
  void outer_round();
  // Waits for the round in flight (if any); the time counts as exposed communication.
  void wait_in_flight();
  // Step 2: the penalised, clipped outer step from the received mean in the exchange's views.
  void apply_stale_mean();

  std::shared_ptr<Communicator> comm_;
  std::shared_ptr<Communicator> channel_;  // the background exchanges run here
  LocalUpdateOptions options_;
  NamedTensors params_;
  std::vector<at::Tensor> anchors_;
  std::vector<at::Tensor> starts_;    // s_r, the round start, in the anchors' dtype
  std::vector<at::Tensor> previous_;  // the anchors before the outer step (clipping only)
  std::optional<OuterOptimizer> outer_;
  std::unique_ptr<ParameterExchange> exchange_;  // after channel_: destroyed (and waited) first
  Work in_flight_;
  bool pending_ = false;  // a launched round's mean is still to be applied
  std::optional<NonFiniteGuard> guard_;
  NonFiniteFinding unsent_;  // error: the first non-finite inner gradient not yet sent
  std::int64_t steps_ = 0;   // inner steps taken; the round position is steps_ % H
  double exposed_comm_s_ = 0;
};

}  // namespace braid
