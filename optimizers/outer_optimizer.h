// OuterOptimizer: the optimizer the local-update methods (DiLoCo, Streaming DiLoCo, CO2) apply to
// their anchors, the last synchronised parameters, given an averaged pseudo-gradient
// Delta = mean_r (anchor - theta_r), which points downhill like a gradient.
//
// Update rule, per tensor i (PyTorch SGD semantics, dampening 0, so `nesterov` equals
// torch::optim::SGD(SGDOptions(lr).momentum(mu).nesterov(true)) fed with .grad = Delta):
//   b_i = mu * b_i + Delta_i,  clamped to [-clip, clip] when clip > 0 (co2)
//   sgd:      anchor_i -= lr * b_i
//   nesterov: anchor_i -= lr * (Delta_i + mu * b_i)
// With mu = 0 there is no buffer and both are anchor -= lr * Delta (lr 1: FedAvg, the average).
// The momentum buffers are the optimizer's state, identical on every rank because every rank
// applies the same update to the same averaged Delta. Tensors are addressed by index, so a
// method that synchronises a fragment at a time (Streaming DiLoCo) steps only those indices.
// Only the training thread calls it.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "optimizers/sync_strategy.h"

namespace braid {

struct OuterOptimizerOptions {
  std::string name = "nesterov";  // outer_optimizer_names()
  double lr = 0.7;
  double momentum = 0.9;
  // > 0: after each update the momentum buffer b (Delta itself without momentum) is clamped
  // element-wise to [-clip, clip] (CO2's outer momentum clipping; 0: off).
  double clip = 0;
};

// The names `outer.optimizer` accepts.
const std::vector<std::string>& outer_optimizer_names();
// The names `outer.reset` accepts (co2): hard | soft.
const std::vector<std::string>& outer_reset_names();

class OuterOptimizer {
 public:
  // `anchors_like`: one tensor per anchor (shape and dtype of the momentum buffers). ConfigError
  // naming outer.optimizer for an unknown name.
  OuterOptimizer(const OuterOptimizerOptions& options, const std::vector<at::Tensor>& anchors_like);

  // anchor -= lr * update(delta) for anchor tensor `index`; `delta` has the anchor's shape.
  void step(int index, at::Tensor& anchor, const at::Tensor& delta);

  const OuterOptimizerOptions& options() const { return options_; }
  // "momentum.<index>" per buffer (none when momentum is 0).
  NamedTensors state() const;
  // CheckpointError on a missing, unknown or misshaped entry.
  void load_state(const NamedTensors& state);

 private:
  OuterOptimizerOptions options_;
  bool nesterov_;
  std::vector<at::Tensor> momentum_;  // empty when options_.momentum == 0
};

}  // namespace braid
