#include "optimizers/local_steps.h"

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

// After <torch/types.h>: clip_grad.h uses torch::Tensor without including it.
#include <torch/nn/utils/clip_grad.h>

#include "common/error.h"
#include "common/trace.h"
#include "optimizers/replicas.h"

namespace braid {

int local_inner_step(torch::optim::Optimizer& optimizer, const NamedTensors& params,
                     double clip_norm) {
  std::vector<at::Tensor> grads;
  for (const auto& [name, p] : params) grads.push_back(p.grad());
  if (const int bad = first_nonfinite(grads); bad >= 0) return bad;
  if (clip_norm > 0) {
    std::vector<at::Tensor> with_grad;
    for (const auto& [name, p] : params) {
      if (p.grad().defined()) with_grad.push_back(p);
    }
    torch::nn::utils::clip_grad_norm_(with_grad, clip_norm);
  }
  trace::Scope scope("optimizer step", "compute");
  optimizer.step();
  return -1;
}

void guarded_inner_step(torch::optim::Optimizer& optimizer, const NamedTensors& params,
                        double clip_norm, std::int64_t step, NonFiniteGuard& guard,
                        NonFiniteFinding& pending) {
  const int bad = local_inner_step(optimizer, params, clip_norm);
  if (bad < 0) return;
  if (guard.skips()) {
    guard.count_skip();
  } else if (!pending.found()) {
    pending = {bad, step, /*pseudo_gradient=*/false};
  }
}

void drop_flagged_round(Communicator& comm, NonFiniteGuard& guard, NonFiniteFinding& pending,
                        int parameter, std::int64_t step) {
  const NonFiniteFinding mine =
      pending.found() ? pending : NonFiniteFinding{parameter, step, /*pseudo_gradient=*/true};
  pending = {};
  guard.on_agreed(comm, mine);
}

std::vector<std::string> names_of(const NamedTensors& params) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : params) names.push_back(name);
  return names;
}

std::vector<at::Tensor> start_replicas(Communicator& comm, const NamedTensors& params) {
  check_same_model(comm, params);
  std::vector<at::Tensor> tensors;
  for (const auto& [name, tensor] : params) tensors.push_back(tensor);
  make_replicas_identical(comm, tensors, 0);
  return make_anchors(params);
}

std::vector<at::Tensor> make_anchors(const NamedTensors& params) {
  std::vector<at::Tensor> anchors;
  for (const auto& [name, p] : params) {
    anchors.push_back(p.detach().to(at::promote_types(p.scalar_type(), at::kFloat),
                                    /*non_blocking=*/false, /*copy=*/true));
  }
  return anchors;
}

void restore_tensor(const std::map<std::string, at::Tensor>& saved, const std::string& name,
                    at::Tensor into) {
  auto it = saved.find(name);
  if (it == saved.end() || !it->second.sizes().equals(into.sizes())) {
    throw CheckpointError(str_cat("has no strategy state '", name, "' of shape ", into.sizes(),
                                  " (written by another sync.strategy?)"));
  }
  into.copy_(it->second);
}

}  // namespace braid
