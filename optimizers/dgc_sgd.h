// DgcSgd: the optimizer step under momentum correction (compression.name dgc, or
// compression.momentum_correction). The exchanged gradient already carries the momentum (each rank
// accumulated u = m u + g before compressing), so the step applies it as it is; weight decay,
// which stays local and is never exchanged, gets a momentum buffer b of its own, as in the DGC
// authors' optimizer (Lin et al., ICLR 2018):
//   b = m b + wd p;  p -= lr (mean + b)          nesterov: p -= lr (mean + wd p + m b)
// With nothing dropped by the compression (ratio 1, no masking) `mean` is the momentum buffer of
// the averaged gradient, and since PyTorch's buf = m buf + (g + wd p) is linear in its input, the
// step is exactly momentum SGD with weight decay (nesterov likewise). Plain SGD plus weight decay,
// the step before this class, made decay 1 / (1 - m) times weaker than in the dense baseline.
//
// State: b per parameter, written as "decay_momentum.<i>"; it follows the (replicated)
// parameters, so it is the same on every rank. A checkpoint without it (written before this
// class, or with weight_decay 0) starts b at zero.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/optim/optimizer.h>

#include <vector>

namespace braid {

class DgcSgdOptions : public torch::optim::OptimizerCloneableOptions<DgcSgdOptions> {
 public:
  explicit DgcSgdOptions(double lr) : lr(lr) {}
  double get_lr() const override { return lr; }
  void set_lr(const double value) override { lr = value; }

  double lr;
  double momentum = 0;  // m: the momentum of the correction, here applied to the decay only
  double weight_decay = 0;
  bool nesterov = false;
};

class DgcSgd : public torch::optim::Optimizer {
 public:
  // ConfigError naming the optimizer key that is out of range.
  DgcSgd(std::vector<at::Tensor> parameters, const DgcSgdOptions& options);

  at::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  // CheckpointError when a saved buffer does not fit its parameter.
  void load(torch::serialize::InputArchive& archive) override;

 private:
  const DgcSgdOptions& options() const;
  at::Tensor decay_step(std::size_t param, const at::Tensor& p);

  std::vector<at::Tensor> decay_momentum_;  // b, by parameter; undefined before its first step
};

}  // namespace braid
