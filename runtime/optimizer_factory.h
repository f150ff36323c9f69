// The inner optimizer and its learning-rate schedule, built from the config's optimizer
// section. The name lists here are the ones config validation accepts.
#pragma once

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace braid {

const std::vector<std::string>& optimizer_names();  // sgd, adamw, onebit_adam
const std::vector<std::string>& schedule_names();   // constant, warmup_cosine

// The optimizer of config.optimizer. With compression.name dgc (or momentum_correction) it is
// DgcSgd (optimizers/dgc_sgd.h): DGC accumulates the gradient's momentum itself, per rank,
// before sparsifying, and the optimizer keeps a momentum for the weight decay only.
// onebit_adam (optimizers/onebit_adam.h) exchanges for itself after optimizer.freeze_step
// steps: the caller hands it to the sync strategy (SyncStrategy::host_optimizer). Its betas and
// eps are AdamW's defaults (0.9, 0.999) and 1e-8, as for adamw.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Config& config,
                                                        std::vector<at::Tensor> parameters);

// The schedule's learning rate at `step` of `total_steps`: constant, or linear warm-up over
// warmup_steps then cosine decay to lr * min_lr_ratio.
double learning_rate(const OptimizerConfig& config, std::int64_t step, std::int64_t total_steps);
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace braid
