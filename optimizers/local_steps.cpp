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

void local_inner_step(torch::optim::Optimizer& optimizer, const NamedTensors& params,
                      double clip_norm) {
  if (clip_norm > 0) {
    std::vector<at::Tensor> with_grad;
    for (const auto& [name, p] : params) {
      if (p.grad().defined()) with_grad.push_back(p);
    }
    torch::nn::utils::clip_grad_norm_(with_grad, clip_norm);
  }
  trace::Scope scope("optimizer step", "compute");
  optimizer.step();
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
