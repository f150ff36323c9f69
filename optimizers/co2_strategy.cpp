#include "optimizers/co2_strategy.h"

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "common/error.h"
#include "common/trace.h"
#include "optimizers/local_steps.h"
#include "optimizers/state_keys.h"

namespace braid {
Co2Strategy::Co2Strategy(std::shared_ptr<Communicator> comm, LocalUpdateOptions options)
    : comm_(std::move(comm)), options_(std::move(options)) {
  const OuterOptions& o = options_.outer;
  if (o.steps < 1) throw ConfigError(str_cat("outer.steps: must be >= 1, got ", o.steps));
  if (!(o.staleness_penalty >= 0)) {
    throw ConfigError(str_cat("outer.staleness_penalty: must be >= 0, got ", o.staleness_penalty));
  }
  if (!(o.clip_norm >= 0)) {
    throw ConfigError(str_cat("outer.clip_norm: must be >= 0 (0: off), got ", o.clip_norm));
  }
  if (!(o.clip_threshold >= 0)) {
    throw ConfigError(
        str_cat("outer.clip_threshold: must be >= 0 (0: off), got ", o.clip_threshold));
  }
  const auto& resets = outer_reset_names();
  if (std::find(resets.begin(), resets.end(), o.reset) == resets.end()) {
    throw ConfigError(
        str_cat("outer.reset: unknown reset '", o.reset, "' (valid: ", join(resets), ")"));
  }
  options_.outer.optimizer.clip = o.clip_threshold;
}

void Co2Strategy::attach(const NamedTensors& parameters) {
  BRAID_CHECK(params_.empty(), "attach() called twice");
  anchors_ = start_replicas(*comm_, parameters);
  params_ = parameters;
  guard_.emplace(options_.nonfinite, names_of(parameters));
  for (const at::Tensor& anchor : anchors_) {
    starts_.push_back(anchor.clone());
    if (options_.outer.clip_norm > 0) previous_.push_back(at::empty_like(anchor));
  }
  outer_.emplace(options_.outer.optimizer, anchors_);
  channel_ = comm_->channel(comm_->options());
  exchange_ = std::make_unique<ParameterExchange>(
      channel_, anchors_,
      ParameterExchangeOptions{options_.algorithm, options_.bucket_mb, options_.compression});
}

void Co2Strategy::step(torch::optim::Optimizer& optimizer) {
  BRAID_CHECK(exchange_, "step() before attach()");
  guarded_inner_step(optimizer, params_, options_.clip_norm, steps_, *guard_, unsent_);
  ++steps_;
  if (steps_ % options_.outer.steps == 0) outer_round();
}

// The header's steps 1-4.
void Co2Strategy::outer_round() {
  at::NoGradGuard no_grad;
  const std::int64_t H = options_.outer.steps;
  if (pending_) {
    wait_in_flight();
    if (exchange_->nonfinite_anywhere()) {  // round k-1's launch, H steps ago
      drop_flagged_round(*comm_, *guard_, unsent_, exchange_->first_nonfinite(), steps_ - H - 1);
    } else {
      apply_stale_mean();
    }
    pending_ = false;
  }
  trace::Scope scope("outer step", "compute");
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor theta = params_[i].second.detach();
    at::Tensor delta = exchange_->view(static_cast<int>(i));
    at::sub_out(delta, starts_[i], theta.to(delta.scalar_type()));
  }
  in_flight_ = exchange_->launch(steps_ / H - 1, flags_exchange(*guard_, unsent_));
  pending_ = true;
  // Under skip, a rank whose pseudo-gradient was not finite restarts from the anchor.
  const bool hard =
      options_.outer.reset == "hard" || (guard_->skips() && exchange_->first_nonfinite() >= 0);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor theta = params_[i].second.detach();
    if (hard) {
      theta.copy_(anchors_[i]);
    } else {
      // Exactly unchanged while the anchor is the round start (round 0). s_r takes theta as the
      // model's dtype stores it, so the next pseudo-gradient holds inner progress only.
      theta.add_(anchors_[i] - starts_[i]);
    }
    starts_[i].copy_(theta);
  }
}

Co2Strategy::~Co2Strategy() {
  try {
    in_flight_.wait();
  } catch (const std::exception&) {
    // The step that launched it failed already; its error was or will be reported there.
  }
}

void Co2Strategy::wait_in_flight() {
  trace::Scope scope("wait for outer round", "comm");
  const auto start = std::chrono::steady_clock::now();
  in_flight_.wait();
  exposed_comm_s_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Co2Strategy::apply_stale_mean() {
  trace::Scope scope("outer step", "compute");
  const OuterOptions& o = options_.outer;
  for (std::size_t i = 0; i < anchors_.size(); ++i) {
    at::Tensor mean = exchange_->view(static_cast<int>(i));
    if (o.staleness_penalty > 0) mean = mean / (1 + o.staleness_penalty);
    if (o.clip_norm > 0) previous_[i].copy_(anchors_[i]);
    outer_->step(static_cast<int>(i), anchors_[i], mean);
  }
  if (o.clip_norm == 0) return;
  // The step taken, u = previous - anchor, over all tensors; float64 so that the norm of a
  // large model does not lose its small terms.
  double squares = 0;
  for (std::size_t i = 0; i < anchors_.size(); ++i)
    squares += (anchors_[i] - previous_[i]).to(at::kDouble).square().sum().item<double>();
  const double norm = std::sqrt(squares);
  if (norm <= o.clip_norm) return;
  const double scale = o.clip_norm / norm;
  for (std::size_t i = 0; i < anchors_.size(); ++i)
    anchors_[i].sub_(previous_[i]).mul_(scale).add_(previous_[i]);
}

void Co2Strategy::quiesce() {
  if (pending_) wait_in_flight();
}

NamedTensors Co2Strategy::state() const {
  BRAID_CHECK(!pending_ || in_flight_.is_completed(), "co2 state() before quiesce()");
  NamedTensors state{{"steps", at::scalar_tensor(steps_, at::kLong)}};
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = params_[i].first;
    state.emplace_back(kAnchorPrefix + name, anchors_[i]);
    state.emplace_back(kStartPrefix + name, starts_[i]);
    if (pending_) state.emplace_back(kPendingPrefix + name, exchange_->view(static_cast<int>(i)));
  }
  for (const auto& [name, tensor] : outer_->state())
    state.emplace_back(kOuterPrefix + name, tensor);
  for (const auto& [name, tensor] : exchange_->state())
    state.emplace_back(kExchangePrefix + name, tensor);
  return state;
}

void Co2Strategy::load_state(const NamedTensors& state) {
  BRAID_CHECK(exchange_, "load_state() before attach()");
  quiesce();
  std::map<std::string, at::Tensor> tensors;
  NamedTensors outer, exchange;
  std::optional<std::int64_t> steps;
  for (const auto& [name, tensor] : state) {
    if (name == "steps") {
      steps = tensor.item<std::int64_t>();
    } else if (starts_with(name, kOuterPrefix)) {
      outer.emplace_back(name.substr(std::string(kOuterPrefix).size()), tensor);
    } else if (starts_with(name, kExchangePrefix)) {
      exchange.emplace_back(name.substr(std::string(kExchangePrefix).size()), tensor);
    } else if (starts_with(name, kAnchorPrefix) || starts_with(name, kStartPrefix) ||
               starts_with(name, kPendingPrefix)) {
      tensors[name] = tensor;
    } else {
      throw CheckpointError(str_cat("unknown strategy state '", name, "'"));
    }
  }
  if (!steps) throw CheckpointError("has no strategy state 'steps'");
  // Every round end launches an exchange, so from the first one on a mean is always pending.
  const bool pending = *steps >= options_.outer.steps;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = params_[i].first;
    restore_tensor(tensors, kAnchorPrefix + name, anchors_[i]);
    restore_tensor(tensors, kStartPrefix + name, starts_[i]);
    if (pending)
      restore_tensor(tensors, kPendingPrefix + name, exchange_->view(static_cast<int>(i)));
  }
  outer_->load_state(outer);
  exchange_->load_state(exchange);
  steps_ = *steps;
  pending_ = pending;
  in_flight_ = Work();  // the pending mean is in the views already
}

SyncStats Co2Strategy::stats() const {
  const std::uint64_t channel_sent = channel_ ? channel_->bytes_sent() : 0;
  const std::uint64_t channel_recv = channel_ ? channel_->bytes_recv() : 0;
  SyncStats stats{comm_->bytes_sent() + channel_sent, comm_->bytes_recv() + channel_recv,
                  exposed_comm_s_};
  stats.bytes_dense =
      exchange_ && exchange_->compressed() ? exchange_->bytes_dense() : stats.bytes_sent;
  stats.skipped_steps = guard_ ? guard_->skipped() : 0;
  return stats;
}

}  // namespace braid
