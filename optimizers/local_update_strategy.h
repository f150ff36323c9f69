// LocalUpdateStrategy: the shared machinery of the local-update methods (local SGD and DiLoCo
// here; Streaming DiLoCo and CO2 build on the same pieces). Every rank steps its inner optimizer
// on its own gradients, with no gradient exchange at all; every H = `outer.steps` steps an outer
// round synchronises the replicas:
//   delta_r = anchor - theta_r               pseudo-gradient, in the anchor's dtype
//   Delta   = mean_r delta_r                 ParameterExchange (compressed if configured)
//   anchor  = OuterOptimizer(anchor, Delta)  identical on every rank
//   theta_r = anchor                         every replica continues from the new anchor
// The anchors are float32 (float64 for a float64 model), so a bf16 model's small updates are
// not lost in the subtraction. The inner optimizer's state is kept across rounds (the DiLoCo
// paper keeps it; its learning-rate schedule runs on the global step). The position within the
// round is steps % H, so the schedule is a pure function of the step and a resumed run
// continues it. Between rounds the replicas differ (parameters_replicated() is false); the
// anchors, the outer momentum and the step count are identical on every rank and are the state
// a checkpoint saves ("steps", "anchor.<name>", "outer.momentum.<i>", and "exchange.*" for
// compression's error feedback, which is per rank). The outer round is synchronous: step()
// returns with the replicas identical, so quiesce() has nothing to finish.
//
// Non-finite gradients (train.nonfinite; local_steps.h has the rule every local method follows):
// an inner step with a non-finite gradient is not applied; the outer round checks the
// pseudo-gradients before encoding them and carries the verdict in the exchange itself. A round
// some rank flags raises NonFiniteError on every rank (error), or (skip) is dropped: anchors and
// outer momentum unchanged, every replica back on the anchors, one skipped step.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collectives/communicator.h"
#include "optimizers/nonfinite_guard.h"
#include "optimizers/outer_optimizer.h"
#include "optimizers/parameter_exchange.h"
#include "optimizers/sync_strategy.h"

namespace braid {

// The outer: section.
struct OuterOptions {
  std::int64_t steps = 20;          // outer.steps: H, inner steps per outer round
  OuterOptimizerOptions optimizer;  // outer.optimizer, outer.lr, outer.momentum
  // streaming_diloco (streaming_diloco_strategy.h): outer.fragments, outer.fragment_pattern,
  // outer.delay_steps (tau), outer.mix (alpha), outer.wire.
  std::int64_t fragments = 2;
  std::string fragment_pattern = "strided";
  std::int64_t delay_steps = 1;
  double mix = 0.5;
  std::string wire = "e3m0";
  // co2 (co2_strategy.h): the stale mean is divided by 1 + staleness_penalty; clip_threshold > 0
  // clamps the outer momentum element-wise; clip_norm > 0 bounds the L2 norm of the outer step
  // (0: off); reset: hard (theta = anchor at each round end, the paper's) | soft (theta keeps
  // its own round's progress on top of the anchor).
  double staleness_penalty = 1;  // outer.staleness_penalty
  double clip_threshold = 1.0;   // outer.clip_threshold
  double clip_norm = 0;          // outer.clip_norm
  std::string reset = "hard";    // outer.reset
};

struct LocalUpdateOptions {
  std::string algorithm = "auto";  // sync.algorithm, for the outer allreduce
  double bucket_mb = 4.0;          // sync.bucket_mb
  double clip_norm = 0;            // > 0: clip each rank's local gradient to this L2 norm
  CompressedExchangeOptions compression;
  OuterOptions outer;
  NonFinitePolicy nonfinite = NonFinitePolicy::kError;  // train.nonfinite
};

class LocalUpdateStrategy : public SyncStrategy {
 public:
  LocalUpdateStrategy(std::shared_ptr<Communicator> comm, LocalUpdateOptions options);
  void attach(const NamedTensors& parameters) override;
  void step(torch::optim::Optimizer& optimizer) override;
  // Nothing is exchanged per step, so gradients simply accumulate in .grad.
  void set_gradient_sync(bool) override {}
  bool state_is_replicated() const override;
  std::string per_rank_state() const override { return per_rank_residuals(options_.compression); }
  bool parameters_replicated() const override;
  std::vector<at::Tensor> global_parameters() const override { return anchors_; }
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  SyncStats stats() const override;

  const std::vector<at::Tensor>& anchors() const { return anchors_; }
  std::int64_t steps() const { return steps_; }

 protected:
  // Collective: one outer round (the formulas above).
  void outer_round();

 private:
  std::shared_ptr<Communicator> comm_;
  LocalUpdateOptions options_;
  NamedTensors params_;
  std::vector<at::Tensor> anchors_;
  std::optional<OuterOptimizer> outer_;
  std::unique_ptr<ParameterExchange> exchange_;
  std::optional<NonFiniteGuard> guard_;
  NonFiniteFinding pending_;  // error: the first non-finite inner gradient of this round
  std::int64_t steps_ = 0;    // inner steps taken; the round position is steps_ % H
  double exposed_comm_s_ = 0;
};

}  // namespace braid
