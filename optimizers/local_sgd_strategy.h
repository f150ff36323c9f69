// LocalSgdStrategy: local SGD / FedAvg (Stich, "Local SGD Converges Fast and Communicates
// Little", ICLR 2019; Lin et al., "Don't Use Large Mini-Batches, Use Local SGD", ICLR 2020).
//
// Update rule: every rank steps its own optimizer on its own gradients; every H steps
//   theta_r = (1/P) sum_q theta_q
// computed as anchor - mean_q (anchor - theta_q) (LocalUpdateStrategy with the outer optimizer
// fixed to SGD, lr 1, momentum 0), which is the parameter average up to float rounding and lets
// a configured compressor encode the round's update rather than the weights themselves.
// outer.optimizer, outer.lr and outer.momentum do not apply.
#pragma once

#include "optimizers/local_update_strategy.h"

namespace braid {

class LocalSgdStrategy : public LocalUpdateStrategy {
 public:
  LocalSgdStrategy(std::shared_ptr<Communicator> comm, LocalUpdateOptions options)
      : LocalUpdateStrategy(std::move(comm), averaging(std::move(options))) {}
  const char* name() const override { return "local_sgd"; }

 private:
  static LocalUpdateOptions averaging(LocalUpdateOptions options) {
    options.outer.optimizer = OuterOptimizerOptions{"sgd", 1.0, 0.0};
    return options;
  }
};

}  // namespace braid
