// The loss a step() closure returns, evaluated with gradients on as torch's own optimizers do
// (an undefined tensor without a closure), for braid's optimizers (DgcSgd, OnebitAdam).
#pragma once

#include <torch/optim/optimizer.h>

namespace braid {

inline at::Tensor evaluate_closure(const torch::optim::Optimizer::LossClosure& closure) {
  if (!closure) return {};
  at::AutoGradMode enable_grad(true);
  return closure();
}

}  // namespace braid
