// DilocoStrategy: DiLoCo, Distributed Low-Communication training (Douillard et al., "DiLoCo:
// Distributed Low-Communication Training of Language Models", arXiv 2311.08105, 2023).
//
// Update rule: H inner steps of the configured optimizer on local gradients, then
//   anchor <- OuterOpt(anchor, mean_r (anchor - theta_r));  theta_r <- anchor
// with OuterOpt Nesterov momentum (outer.lr 0.7, outer.momentum 0.9 in the paper) or SGD
// (OuterOptimizer states the recurrence). H = 1 with inner SGD and outer SGD lr 1, momentum 0
// is synchronous data parallelism; outer SGD lr 1, momentum 0 at any H is FedAvg (local_sgd).
// The machinery (anchors, pseudo-gradient exchange, state) is LocalUpdateStrategy's.
#pragma once

#include "optimizers/local_update_strategy.h"

namespace braid {

class DilocoStrategy : public LocalUpdateStrategy {
 public:
  using LocalUpdateStrategy::LocalUpdateStrategy;
  const char* name() const override { return "diloco"; }
};

}  // namespace braid
