#include "optimizers/outer_optimizer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>

#include "common/error.h"

namespace braid {

const std::vector<std::string>& outer_optimizer_names() {
  static const std::vector<std::string> names = {"nesterov", "sgd"};
  return names;
}

const std::vector<std::string>& outer_reset_names() {
  static const std::vector<std::string> names = {"hard", "soft"};
  return names;
}

OuterOptimizer::OuterOptimizer(const OuterOptimizerOptions& options,
                               const std::vector<at::Tensor>& anchors_like)
    : options_(options), nesterov_(options.name == "nesterov") {
  const auto& names = outer_optimizer_names();
  if (std::find(names.begin(), names.end(), options.name) == names.end()) {
    throw ConfigError(str_cat("outer.optimizer: unknown outer optimizer '", options.name,
                              "' (valid: ", join(names), ")"));
  }
  BRAID_CHECK(options.lr >= 0 && options.momentum >= 0 && options.momentum < 1 && options.clip >= 0,
              "outer lr ", options.lr, " momentum ", options.momentum, " clip ", options.clip);
  if (options.momentum == 0) return;
  for (const at::Tensor& a : anchors_like) momentum_.push_back(at::zeros_like(a));
}

// The same operations, in the same order, as torch::optim::SGD, so a test can compare bitwise.
void OuterOptimizer::step(int index, at::Tensor& anchor, const at::Tensor& delta) {
  const double clip = options_.clip;
  if (momentum_.empty()) {
    anchor.add_(clip > 0 ? delta.clamp(-clip, clip) : delta, -options_.lr);
    return;
  }
  at::Tensor& b = momentum_.at(index);
  b.mul_(options_.momentum).add_(delta);
  if (clip > 0) b.clamp_(-clip, clip);
  anchor.add_(nesterov_ ? delta.add(b, options_.momentum) : b, -options_.lr);
}

NamedTensors OuterOptimizer::state() const {
  NamedTensors state;
  for (std::size_t i = 0; i < momentum_.size(); ++i)
    state.emplace_back(str_cat("momentum.", i), momentum_[i]);
  return state;
}

void OuterOptimizer::load_state(const NamedTensors& state) {
  std::map<std::string, at::Tensor> given(state.begin(), state.end());
  for (std::size_t i = 0; i < momentum_.size(); ++i) {
    const std::string name = str_cat("momentum.", i);
    auto it = given.find(name);
    if (it == given.end()) {
      throw CheckpointError(str_cat("has no outer optimizer state '", name,
                                    "' (was it written with outer.momentum 0?)"));
    }
    if (!it->second.sizes().equals(momentum_[i].sizes())) {
      throw CheckpointError(str_cat("outer optimizer state '", name, "' has another shape"));
    }
    momentum_[i].copy_(it->second);
    given.erase(it);
  }
  if (!given.empty()) {
    throw CheckpointError(str_cat("unknown outer optimizer state '", given.begin()->first, "'"));
  }
}

}  // namespace braid
