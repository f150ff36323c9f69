#include "optimizers/streaming_diloco_strategy.h"

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "common/error.h"
#include "common/log.h"
#include "common/require_option.h"
#include "common/trace.h"
#include "optimizers/local_steps.h"
#include "optimizers/state_keys.h"

namespace braid {
namespace {

std::string after(const std::string& s, const char* prefix) {
  return s.substr(std::string(prefix).size());
}

void validate(const LocalUpdateOptions& o) {
  const OuterOptions& outer = o.outer;
  require_option(outer.steps >= 1, "outer.steps", ">= 1", std::to_string(outer.steps));
  require_option(outer.fragments >= 1 && outer.fragments <= outer.steps, "outer.fragments",
                 "in 1..outer.steps (each fragment needs its own offset)",
                 std::to_string(outer.fragments));
  require_option(outer.delay_steps >= 0 && outer.delay_steps < outer.steps, "outer.delay_steps",
                 ">= 0 and < outer.steps", std::to_string(outer.delay_steps));
  require_option(outer.mix >= 0 && outer.mix <= 1, "outer.mix", "in [0, 1]", str_cat(outer.mix));
  const auto& patterns = fragment_pattern_names();
  if (std::find(patterns.begin(), patterns.end(), outer.fragment_pattern) == patterns.end()) {
    throw ConfigError(str_cat("outer.fragment_pattern: unknown pattern '", outer.fragment_pattern,
                              "' (valid: ", join(patterns), ")"));
  }
  const bool compressing =
      o.compression.compression.name != "none" || o.compression.error_feedback != "none";
  if (compressing && parse_wire(outer.wire) != WireFormat::kFloat32) {
    throw ConfigError(str_cat("outer.wire: must be float32 with compression.name '",
                              o.compression.compression.name, "', got ", outer.wire,
                              " (a compressor encodes the pseudo-gradients itself)"));
  }
}

}  // namespace

StreamingDilocoStrategy::StreamingDilocoStrategy(std::shared_ptr<Communicator> comm,
                                                 LocalUpdateOptions options)
    : comm_(std::move(comm)), options_(std::move(options)) {
  validate(options_);
  wire_ = parse_wire(options_.outer.wire);
  schedule_ = {options_.outer.steps, options_.outer.delay_steps,
               static_cast<int>(options_.outer.fragments)};
}

// Every rank runs the same schedule, so the exchanges still in flight at a normal end complete
// on every rank; they are finished rather than aborted (an aborted allgather would leave peers
// mid-message). A failing job ends them with its deadline's TimeoutError or a broken
// communicator's CommError, reported where the failure happened.
StreamingDilocoStrategy::~StreamingDilocoStrategy() {
  for (Work& work : works_) {
    try {
      work.wait();
    } catch (const std::exception&) {
    }
  }
}

void StreamingDilocoStrategy::attach(const NamedTensors& parameters) {
  BRAID_CHECK(params_.empty(), "attach() called twice");
  std::vector<std::string> names;
  for (const auto& [name, tensor] : parameters) names.push_back(name);
  fragment_of_ = assign_fragments(names, schedule_.fragments, options_.outer.fragment_pattern);
  if (comm_->rank() == 0) {
    spdlog::info("streaming_diloco: {} fragments {} ({})", schedule_.fragments,
                 describe_fragments(names, fragment_of_), options_.outer.fragment_pattern);
  }
  anchors_ = start_replicas(*comm_, parameters);
  params_ = parameters;
  guard_.emplace(options_.nonfinite, names_of(parameters));
  outer_.emplace(options_.outer.optimizer, anchors_);
  members_.assign(schedule_.fragments, {});
  for (std::size_t i = 0; i < fragment_of_.size(); ++i)
    members_[fragment_of_[i]].push_back(static_cast<int>(i));
  // Collective, at the same point on every rank: the exchanges get their own thread and tags.
  channel_ = comm_->channel(comm_->options());
  const ParameterExchangeOptions dense{options_.algorithm, options_.bucket_mb,
                                       options_.compression};
  for (int p = 0; p < schedule_.fragments; ++p) {
    std::vector<at::Tensor> like;
    for (int i : members(p)) like.push_back(anchors_[i]);
    exchanges_.push_back(std::make_unique<FragmentExchange>(channel_, like, wire_, dense, p));
  }
  works_.assign(schedule_.fragments, Work());
}

void StreamingDilocoStrategy::step(torch::optim::Optimizer& optimizer) {
  BRAID_CHECK(!exchanges_.empty(), "step() before attach()");
  guarded_inner_step(optimizer, params_, options_.clip_norm, steps_, *guard_, pending_);
  ++steps_;
  for (int p = 0; p < schedule_.fragments; ++p)
    if (schedule_.sends(p, steps_)) send(p);
  for (int p = 0; p < schedule_.fragments; ++p)
    if (schedule_.receives(p, steps_)) receive(p);
}

void StreamingDilocoStrategy::send(int p) {
  at::NoGradGuard no_grad;
  FragmentExchange& exchange = *exchanges_[p];
  const std::vector<int>& indices = members(p);
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const int i = indices[k];
    at::Tensor slot = exchange.view(static_cast<int>(k));
    at::sub_out(slot, anchors_[i], params_[i].second.detach().to(slot.scalar_type()));
  }
  const std::int64_t round = (steps_ - schedule_.offset(p)) / schedule_.H;
  works_[p] = exchange.launch(round * schedule_.fragments + p, flags_exchange(*guard_, pending_));
}

void StreamingDilocoStrategy::receive(int p) {
  {
    trace::Scope scope("wait for fragment", "comm");
    const auto start = std::chrono::steady_clock::now();
    works_[p].wait();
    exposed_comm_s_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  trace::Scope scope("outer step", "compute");
  at::NoGradGuard no_grad;
  const std::vector<int>& indices = members(p);
  if (exchanges_[p]->nonfinite_anywhere()) {
    const int k = exchanges_[p]->first_nonfinite();
    drop_flagged_round(*comm_, *guard_, pending_, k < 0 ? -1 : indices[k],
                       steps_ - schedule_.tau - 1);  // the step that sent it
    for (int i : indices) params_[i].second.detach().copy_(anchors_[i]);
    return;
  }
  const double mix = options_.outer.mix;
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const int i = indices[k];
    outer_->step(i, anchors_[i], exchanges_[p]->view(static_cast<int>(k)));
    at::Tensor theta = params_[i].second.detach();
    if (mix == 0) {
      theta.copy_(anchors_[i]);
    } else if (mix < 1) {
      theta.copy_(anchors_[i].lerp(theta.to(anchors_[i].scalar_type()), mix));
    }
  }
}

void StreamingDilocoStrategy::quiesce() {
  trace::Scope scope("quiesce fragments", "comm");
  for (Work& work : works_) work.wait();
}

bool StreamingDilocoStrategy::state_is_replicated() const {
  for (const auto& exchange : exchanges_)
    if (!exchange->state_is_replicated()) return false;
  return true;
}

bool StreamingDilocoStrategy::parameters_replicated() const {
  if (steps_ == 0) return true;
  if (options_.outer.mix != 0) return false;
  for (int p = 0; p < schedule_.fragments; ++p)
    if (!schedule_.receives(p, steps_)) return false;
  return true;
}

NamedTensors StreamingDilocoStrategy::state() const {
  NamedTensors state{{"steps", at::scalar_tensor(steps_, at::kLong)}};
  for (std::size_t i = 0; i < params_.size(); ++i)
    state.emplace_back(kAnchorPrefix + params_[i].first, anchors_[i]);
  for (const auto& [name, tensor] : outer_->state())
    state.emplace_back(kOuterPrefix + name, tensor);
  for (int p = 0; p < schedule_.fragments; ++p) {
    const FragmentExchange& exchange = *exchanges_[p];
    BRAID_CHECK(!exchange.in_flight(), "state() with fragment ", p, " in flight: quiesce() first");
    for (const auto& [name, tensor] : exchange.state())
      state.emplace_back(str_cat(kExchangePrefix, p, ".", name), tensor);
    if (!schedule_.in_flight(p, steps_)) continue;
    const std::vector<int>& indices = members(p);
    for (std::size_t k = 0; k < indices.size(); ++k)
      state.emplace_back(kInflightPrefix + params_[indices[k]].first,
                         exchange.view(static_cast<int>(k)));
  }
  return state;
}

void StreamingDilocoStrategy::load_state(const NamedTensors& state) {
  quiesce();
  std::map<std::string, at::Tensor> anchors, inflight;
  NamedTensors outer;
  std::vector<NamedTensors> exchange(schedule_.fragments);
  std::optional<std::int64_t> steps;
  for (const auto& [name, tensor] : state) {
    if (name == "steps") {
      steps = tensor.item<std::int64_t>();
    } else if (starts_with(name, kAnchorPrefix)) {
      anchors[name] = tensor;
    } else if (starts_with(name, kInflightPrefix)) {
      inflight[after(name, kInflightPrefix)] = tensor;
    } else if (starts_with(name, kOuterPrefix)) {
      outer.emplace_back(after(name, kOuterPrefix), tensor);
    } else if (starts_with(name, kExchangePrefix)) {
      const std::string rest = after(name, kExchangePrefix);
      const auto dot = rest.find('.');
      const int p = dot == std::string::npos ? -1 : std::atoi(rest.substr(0, dot).c_str());
      if (p < 0 || p >= schedule_.fragments || rest.substr(0, dot) != std::to_string(p)) {
        throw CheckpointError(str_cat("strategy state '", name, "' names no fragment of ",
                                      schedule_.fragments, " (was outer.fragments changed?)"));
      }
      exchange[p].emplace_back(rest.substr(dot + 1), tensor);
    } else {
      throw CheckpointError(str_cat("unknown strategy state '", name, "'"));
    }
  }
  if (!steps) throw CheckpointError("has no strategy state 'steps'");
  for (std::size_t i = 0; i < params_.size(); ++i)
    restore_tensor(anchors, kAnchorPrefix + params_[i].first, anchors_[i]);
  outer_->load_state(outer);
  std::size_t used = 0;
  for (int p = 0; p < schedule_.fragments; ++p) {
    exchanges_[p]->load_state(exchange[p]);
    works_[p] = Work();
    if (!schedule_.in_flight(p, *steps)) continue;
    const std::vector<int>& indices = members(p);
    for (std::size_t k = 0; k < indices.size(); ++k) {
      const std::string& name = params_[indices[k]].first;
      auto it = inflight.find(name);
      at::Tensor slot = exchanges_[p]->view(static_cast<int>(k));
      if (it == inflight.end() || !it->second.sizes().equals(slot.sizes())) {
        throw CheckpointError(str_cat("has no in-flight pseudo-gradient for parameter '", name,
                                      "' at step ", *steps, " (were outer.* keys changed?)"));
      }
      slot.copy_(it->second);
      ++used;
    }
  }
  if (used != inflight.size()) {
    throw CheckpointError(str_cat("has in-flight pseudo-gradients the schedule does not expect at ",
                                  "step ", *steps, " (were outer.* keys changed?)"));
  }
  steps_ = *steps;
}

SyncStats StreamingDilocoStrategy::stats() const {
  SyncStats stats{comm_->bytes_sent(), comm_->bytes_recv(), exposed_comm_s_};
  if (channel_) {
    stats.bytes_sent += channel_->bytes_sent();
    stats.bytes_recv += channel_->bytes_recv();
  }
  bool compressed = false;
  std::uint64_t dense = 0;
  for (const auto& exchange : exchanges_) {
    compressed = compressed || exchange->compressed();
    dense += exchange->bytes_dense();
  }
  stats.bytes_dense = compressed ? dense : stats.bytes_sent;
  stats.skipped_steps = guard_ ? guard_->skipped() : 0;
  return stats;
}

}  // namespace braid
