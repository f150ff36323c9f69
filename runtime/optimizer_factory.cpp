#include "runtime/optimizer_factory.h"

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "optimizers/dgc_sgd.h"
#include "optimizers/onebit_adam.h"

namespace braid {

const std::vector<std::string>& optimizer_names() {
  static const std::vector<std::string> names = {"sgd", "adamw", "onebit_adam"};
  return names;
}

const std::vector<std::string>& schedule_names() {
  static const std::vector<std::string> names = {"constant", "warmup_cosine"};
  return names;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Config& config,
                                                        std::vector<at::Tensor> parameters) {
  const OptimizerConfig& o = config.optimizer;
  if (o.name == "adamw") {
    return std::make_unique<torch::optim::AdamW>(
        parameters, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  }
  if (o.name == "onebit_adam") {
    OnebitAdamOptions options(o.lr);
    options.weight_decay = o.weight_decay;
    options.freeze_step = o.freeze_step;
    return std::make_unique<OnebitAdam>(parameters, options);
  }
  BRAID_CHECK(o.name == "sgd", "optimizer.name '", o.name, "' passed validation");
  // Under DGC's momentum correction (compression.momentum_correction too, for any compressor)
  // the momentum is accumulated per rank before compressing, so the exchanged mean is applied as
  // it is; weight decay gets a momentum buffer of its own (optimizers/dgc_sgd.h), as in the DGC
  // authors' optimizer.
  if (config.compression.name == "dgc" || config.compression.momentum_correction) {
    DgcSgdOptions options(o.lr);
    options.momentum = o.momentum;
    options.weight_decay = o.weight_decay;
    options.nesterov = o.nesterov;
    return std::make_unique<DgcSgd>(parameters, options);
  }
  return std::make_unique<torch::optim::SGD>(parameters, torch::optim::SGDOptions(o.lr)
                                                             .momentum(o.momentum)
                                                             .weight_decay(o.weight_decay)
                                                             .nesterov(o.nesterov));
}

double learning_rate(const OptimizerConfig& o, std::int64_t step, std::int64_t total_steps) {
  if (o.schedule == "constant") return o.lr;
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / o.warmup_steps;
  const double span = std::max<std::int64_t>(1, total_steps - o.warmup_steps);
  const double progress = std::min(1.0, (step - o.warmup_steps) / span);
  return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * progress)));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace braid
