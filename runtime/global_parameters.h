// GlobalParametersScope: while alive, the model's parameters hold the strategy's global
// parameters (SyncStrategy::global_parameters: a local-update method's outer parameters), so
// that evaluation and the exported model are what the method's paper evaluates, not one rank's
// replica in the middle of its local steps; the live parameters come back, bit for bit, when it
// ends. With a synchronous strategy it changes nothing.
//
// On the training thread between steps only: the strategy changes its global parameters and
// reads the live ones only inside step() and load_state().
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace braid {

class SyncStrategy;

class GlobalParametersScope {
 public:
  GlobalParametersScope(const SyncStrategy& strategy, std::vector<at::Tensor> parameters);
  ~GlobalParametersScope();
  GlobalParametersScope(const GlobalParametersScope&) = delete;
  GlobalParametersScope& operator=(const GlobalParametersScope&) = delete;

 private:
  std::vector<at::Tensor> parameters_;
  std::vector<at::Tensor> live_;  // copies of the live values; empty: nothing was swapped
};

}  // namespace braid
