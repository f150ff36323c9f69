#include "optimizers/dgc_sgd.h"

#include <ATen/ATen.h>
#include <torch/serialize/archive.h>

#include "common/error.h"
#include "common/require_option.h"
#include "optimizers/step_closure.h"

namespace braid {
namespace {

std::string buffer_name(std::size_t param) { return str_cat("decay_momentum.", param); }

}  // namespace

DgcSgd::DgcSgd(std::vector<at::Tensor> parameters, const DgcSgdOptions& options)
    : torch::optim::Optimizer(std::move(parameters), std::make_unique<DgcSgdOptions>(options)) {
  require_option(options.lr >= 0, "optimizer.lr", ">= 0", str_cat(options.lr));
  require_option(options.momentum >= 0 && options.momentum < 1, "optimizer.momentum", "in [0, 1)",
                 str_cat(options.momentum));
  require_option(options.weight_decay >= 0, "optimizer.weight_decay", ">= 0",
                 str_cat(options.weight_decay));
  require_option(!options.nesterov || options.momentum > 0, "optimizer.nesterov",
                 "false when optimizer.momentum is 0", "true");
  BRAID_CHECK(param_groups().size() == 1, "dgc_sgd supports one parameter group, got ",
              param_groups().size());
  decay_momentum_.resize(param_groups()[0].params().size());
}

const DgcSgdOptions& DgcSgd::options() const {
  return static_cast<const DgcSgdOptions&>(defaults());
}

// What the decay adds to this step's update: b, or wd p + m b with Nesterov.
at::Tensor DgcSgd::decay_step(std::size_t param, const at::Tensor& p) {
  const DgcSgdOptions& o = options();
  at::Tensor decay = p.mul(o.weight_decay);
  if (o.momentum == 0) return decay;
  at::Tensor& b = decay_momentum_[param];
  if (!b.defined()) b = at::zeros_like(p);
  b.mul_(o.momentum).add_(decay);
  return o.nesterov ? decay.add_(b, o.momentum) : b;
}

at::Tensor DgcSgd::step(LossClosure closure) {
  const at::Tensor loss = evaluate_closure(closure);
  at::NoGradGuard no_grad;
  const double lr = param_groups()[0].options().get_lr();
  const std::vector<at::Tensor>& params = param_groups()[0].params();
  for (std::size_t i = 0; i < params.size(); ++i) {
    at::Tensor p = params[i];
    const at::Tensor& grad = p.grad();
    if (!grad.defined()) continue;  // no rank computed one, as torch's SGD skips it
    if (options().weight_decay == 0) {
      p.add_(grad, -lr);
    } else {
      p.add_(grad.add(decay_step(i, p)), -lr);
    }
  }
  return loss;
}

void DgcSgd::save(torch::serialize::OutputArchive& archive) const {
  for (std::size_t i = 0; i < decay_momentum_.size(); ++i) {
    if (decay_momentum_[i].defined()) archive.write(buffer_name(i), decay_momentum_[i]);
  }
}

void DgcSgd::load(torch::serialize::InputArchive& archive) {
  const std::vector<at::Tensor>& params = param_groups()[0].params();
  std::vector<at::Tensor> loaded(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    at::Tensor b;
    if (!archive.try_read(buffer_name(i), b)) continue;
    if (!b.sizes().equals(params[i].sizes()) || b.scalar_type() != params[i].scalar_type()) {
      throw CheckpointError(str_cat("optimizer state '", buffer_name(i), "' has shape ", b.sizes(),
                                    " ", b.scalar_type(), "; parameter ", i, " is ",
                                    params[i].sizes(), " ", params[i].scalar_type()));
    }
    loaded[i] = b.to(params[i].device()).clone();
  }
  decay_momentum_ = std::move(loaded);
}

}  // namespace braid
