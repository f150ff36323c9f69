#include "optimizers/local_update_strategy.h"

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <chrono>
#include <map>

#include "common/error.h"
#include "common/trace.h"
#include "optimizers/local_steps.h"
#include "optimizers/state_keys.h"

namespace braid {
LocalUpdateStrategy::LocalUpdateStrategy(std::shared_ptr<Communicator> comm,
                                         LocalUpdateOptions options)
    : comm_(std::move(comm)), options_(std::move(options)) {
  if (options_.outer.steps < 1) {
    throw ConfigError(str_cat("outer.steps: must be >= 1, got ", options_.outer.steps));
  }
}

void LocalUpdateStrategy::attach(const NamedTensors& parameters) {
  BRAID_CHECK(params_.empty(), "attach() called twice");
  anchors_ = start_replicas(*comm_, parameters);
  params_ = parameters;
  guard_.emplace(options_.nonfinite, names_of(parameters));
  outer_.emplace(options_.outer.optimizer, anchors_);
  exchange_ = std::make_unique<ParameterExchange>(
      comm_, anchors_,
      ParameterExchangeOptions{options_.algorithm, options_.bucket_mb, options_.compression});
}

void LocalUpdateStrategy::step(torch::optim::Optimizer& optimizer) {
  BRAID_CHECK(exchange_, "step() before attach()");
  guarded_inner_step(optimizer, params_, options_.clip_norm, steps_, *guard_, pending_);
  ++steps_;
  if (steps_ % options_.outer.steps == 0) outer_round();
}

void LocalUpdateStrategy::outer_round() {
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor slot = exchange_->view(static_cast<int>(i));
    at::sub_out(slot, anchors_[i], params_[i].second.detach().to(slot.scalar_type()));
  }
  const std::int64_t round = steps_ / options_.outer.steps - 1;
  Work work = exchange_->launch(round, flags_exchange(*guard_, pending_));
  {
    trace::Scope scope("wait for outer round", "comm");
    const auto start = std::chrono::steady_clock::now();
    work.wait();
    exposed_comm_s_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  trace::Scope scope("outer step", "compute");
  const bool drop = exchange_->nonfinite_anywhere();
  if (drop) drop_flagged_round(*comm_, *guard_, pending_, exchange_->first_nonfinite(), steps_ - 1);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!drop) outer_->step(static_cast<int>(i), anchors_[i], exchange_->view(static_cast<int>(i)));
    params_[i].second.detach().copy_(anchors_[i]);
  }
}

bool LocalUpdateStrategy::state_is_replicated() const {
  return !exchange_ || exchange_->state_is_replicated();
}

bool LocalUpdateStrategy::parameters_replicated() const {
  return steps_ % options_.outer.steps == 0;
}

NamedTensors LocalUpdateStrategy::state() const {
  NamedTensors state{{"steps", at::scalar_tensor(steps_, at::kLong)}};
  for (std::size_t i = 0; i < params_.size(); ++i)
    state.emplace_back(kAnchorPrefix + params_[i].first, anchors_[i]);
  for (const auto& [name, tensor] : outer_->state())
    state.emplace_back(kOuterPrefix + name, tensor);
  for (const auto& [name, tensor] : exchange_->state())
    state.emplace_back(kExchangePrefix + name, tensor);
  return state;
}

void LocalUpdateStrategy::load_state(const NamedTensors& state) {
  std::map<std::string, at::Tensor> anchors;
  NamedTensors outer, exchange;
  std::optional<std::int64_t> steps;
  for (const auto& [name, tensor] : state) {
    if (name == "steps") {
      steps = tensor.item<std::int64_t>();
    } else if (starts_with(name, kAnchorPrefix)) {
      anchors[name] = tensor;
    } else if (starts_with(name, kOuterPrefix)) {
      outer.emplace_back(name.substr(std::string(kOuterPrefix).size()), tensor);
    } else if (starts_with(name, kExchangePrefix)) {
      exchange.emplace_back(name.substr(std::string(kExchangePrefix).size()), tensor);
    } else {
      throw CheckpointError(str_cat("unknown strategy state '", name, "'"));
    }
  }
  if (!steps) throw CheckpointError("has no strategy state 'steps'");
  for (std::size_t i = 0; i < params_.size(); ++i)
    restore_tensor(anchors, kAnchorPrefix + params_[i].first, anchors_[i]);
  outer_->load_state(outer);
  exchange_->load_state(exchange);
  steps_ = *steps;
}

SyncStats LocalUpdateStrategy::stats() const {
  SyncStats stats{comm_->bytes_sent(), comm_->bytes_recv(), exposed_comm_s_};
  stats.bytes_dense =
      exchange_ && exchange_->compressed() ? exchange_->bytes_dense() : stats.bytes_sent;
  stats.skipped_steps = guard_ ? guard_->skipped() : 0;
  return stats;
}

}  // namespace braid
