#include "runtime/global_parameters.h"

#include <ATen/ATen.h>

#include "common/error.h"
#include "optimizers/sync_strategy.h"

namespace braid {

GlobalParametersScope::GlobalParametersScope(const SyncStrategy& strategy,
                                             std::vector<at::Tensor> parameters)
    : parameters_(std::move(parameters)) {
  const std::vector<at::Tensor> global = strategy.global_parameters();
  if (global.empty()) return;
  BRAID_CHECK(global.size() == parameters_.size(), "the strategy has ", global.size(),
              " global parameters for ", parameters_.size(), " model parameters");
  at::NoGradGuard no_grad;
  live_.reserve(parameters_.size());
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    live_.push_back(parameters_[i].detach().clone());
    parameters_[i].detach().copy_(global[i]);
  }
}

GlobalParametersScope::~GlobalParametersScope() {
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < live_.size(); ++i) parameters_[i].detach().copy_(live_[i]);
}

}  // namespace braid
