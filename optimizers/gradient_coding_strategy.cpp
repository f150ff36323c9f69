#include "optimizers/gradient_coding_strategy.h"

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

// After <torch/types.h>: clip_grad.h uses torch::Tensor without including it.
#include <torch/nn/utils/clip_grad.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>

#include "collectives/tensor.h"
#include "common/error.h"
#include "common/trace.h"
#include "optimizers/nonfinite_guard.h"
#include "optimizers/replicas.h"

namespace braid {

namespace {

// Tests a request a bounded number of times: a message that already arrived may need a few
// progress calls (a rendezvous handshake) before its request completes.
bool arrived(Request& request) {
  for (int i = 0; i < 64; ++i) {
    if (request.test()) return true;
  }
  return false;
}

}  // namespace

GradientCodingStrategy::GradientCodingStrategy(std::shared_ptr<Communicator> comm,
                                               GradientCodingOptions options)
    : comm_(std::move(comm)),
      options_(std::move(options)),
      code_(options_.scheme, comm_->size(), options_.stragglers) {
  channel_ = comm_->channel(comm_->options());
}

GradientCodingStrategy::~GradientCodingStrategy() {
  // Late messages must find their receives still posted, and our own sends must complete,
  // before the channel cancels what is left; every rank drains here at the end of a run. While
  // an exception unwinds, peers may never send again: break the channel rather than wait.
  if (std::uncaught_exceptions() > 0) {
    channel_->abort("the gradient coding strategy was destroyed by an exception");
    return;
  }
  try {
    quiesce();
  } catch (const std::exception&) {
    // The run already failed (the channel is broken); the channel's destructor cancels the rest.
  }
}

void GradientCodingStrategy::attach(const NamedTensors& parameters) {
  BRAID_CHECK(params_.empty(), "attach() called twice");
  check_same_model(*comm_, parameters);
  std::vector<std::string> names;
  for (const auto& [name, tensor] : parameters) names.push_back(name);
  guard_.emplace(options_.nonfinite, std::move(names));
  for (const auto& [name, tensor] : parameters) {
    if (params_.empty()) dtype_ = tensor.scalar_type();
    BRAID_CHECK(tensor.scalar_type() == dtype_ && (dtype_ == at::kFloat || dtype_ == at::kDouble),
                "gradient coding needs float32 or float64 parameters of one dtype; '", name,
                "' is ", tensor.scalar_type());
    params_.push_back(tensor);
    count_ += tensor.numel();
  }
  const std::size_t bytes = length() * c10::elementSize(dtype_);
  coded_.assign(bytes, 0);
  result_.assign(bytes, 0);
  make_replicas_identical(*comm_, params_, 0);
}

BatchAssignment GradientCodingStrategy::assign_batch(std::int64_t, int rank, int world) const {
  BRAID_CHECK(world == code_.workers(), "gradient code for ", code_.workers(), " ranks, asked for ",
              world);
  assigned_ = true;
  return {code_.partitions(rank), code_.weights(rank)};
}

bool GradientCodingStrategy::wants_gradients() {
  computed_ = channel_->rank() == 0 || results_through_.load() < steps_;
  if (!computed_) ++skipped_;
  return computed_;
}

// step() reads the accumulated .grad, so backward passes between steps (several partitions,
// micro-steps) simply add up: nothing to switch.
void GradientCodingStrategy::set_gradient_sync(bool) {}

// f_i (the accumulated .grad of this step's weighted partitions) and the weighted loss, flat.
void GradientCodingStrategy::pack_gradients() {
  at::Tensor flat = at::from_blob(coded_.data(), {length()}, at::TensorOptions(dtype_));
  std::int64_t offset = 0;
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : params_) {
    at::Tensor slot = flat.narrow(0, offset, p.numel());
    if (p.grad().defined()) {
      slot.copy_(p.grad().reshape(-1));
    } else {
      slot.zero_();
    }
    grads.push_back(p.grad());
    offset += p.numel();
  }
  flat[count_].fill_(loss_);
  flat[count_ + kParameterSlot].fill_(first_nonfinite(grads));
}

void GradientCodingStrategy::step(torch::optim::Optimizer& optimizer) {
  BRAID_CHECK(!params_.empty(), "step() before attach()");
  // A loop that never asked which partitions to compute backpropagated its own batch: the
  // decoder would weight plain gradients as coded ones and average them wrongly. Every rank
  // runs the same loop, so every rank stops here alike.
  if (!assigned_) {
    throw ConfigError(
        "sync.strategy 'gradient_coding' needs its batch assignment: before computing a step, "
        "call strategy().assign_batch(step, rank, world) and backpropagate sum_k weights[k] * "
        "loss(partition partitions[k]) of the global batch, as braid train does "
        "(docs/embedding.md); a plain loop averages correctly with allreduce");
  }
  if (computed_) pack_gradients();
  const std::int64_t step = steps_;
  const bool root = channel_->rank() == 0;
  OpDesc desc{"gradient_coding", code_.scheme(), length(), dtype_of(dtype_), 0};
  desc.partial = true;  // the root goes on with the first n - s messages
  Work work = channel_->submit(desc, [this, root, step](OpContext& ctx) {
    root ? run_root(ctx, step) : run_member(ctx, step);
  });
  {
    trace::Scope scope("wait for coded gradients", "comm");
    const auto start = std::chrono::steady_clock::now();
    work.wait();
    exposed_comm_s_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  apply_result(optimizer);
  computed_ = true;
  ++steps_;
}

// The root: first n - s messages, decoded in float64; the result goes to every rank without
// waiting for the sends (a late rank receives it when it gets to this step).
void GradientCodingStrategy::run_root(OpContext& ctx, std::int64_t step) {
  late_.reap(ctx.tag());
  reap_sends(ctx);
  const int n = ctx.size(), k = n - code_.stragglers();
  const DType dtype = dtype_of(dtype_);
  std::vector<char> gathered(k * coded_.size());
  const std::vector<int> ranks =
      gather_first_k(ctx, Buffer{coded_.data(), length(), dtype},
                     Buffer{gathered.data(), k * (length()), dtype}, k, 0, late_);
  const std::vector<double> a = code_.decode(ranks);
  std::vector<double> weights;
  for (int r : ranks) weights.push_back(a[r] / n);
  const auto f64 = at::TensorOptions(at::kDouble);
  at::Tensor blocks = at::from_blob(gathered.data(), {k, length()}, at::TensorOptions(dtype_));
  at::Tensor decoded =
      (at::from_blob(weights.data(), {k, 1}, f64) * blocks.to(at::kDouble)).sum(0).to(dtype_);
  // The first used message (lowest rank) whose gradients were not finite names the finding.
  int bad_rank = -1;
  double bad_parameter = -1;
  for (int i = 0; i < k; ++i) {
    const double parameter = blocks[i][count_ + kParameterSlot].item<double>();
    if (parameter >= 0 && (bad_rank < 0 || ranks[i] < bad_rank)) {
      bad_rank = ranks[i];
      bad_parameter = parameter;
    }
  }
  decoded[count_ + kParameterSlot].fill_(bad_parameter);
  decoded[count_ + kRankSlot].fill_(bad_rank);
  auto memory = std::make_shared<std::vector<char>>(result_.size());
  std::memcpy(memory->data(), decoded.data_ptr(), memory->size());
  std::memcpy(result_.data(), memory->data(), memory->size());
  for (int peer = 1; peer < n; ++peer) {
    sends_.push_back({step, memory, ctx.send(memory->data(), memory->size(), peer)});
  }
}

// A member: sends its message (a copy: the next step reuses coded_), takes this step's result
// (received ahead, or received now) and looks ahead for the next steps' results.
void GradientCodingStrategy::run_member(OpContext& ctx, std::int64_t step) {
  reap_sends(ctx);
  auto message = std::make_shared<std::vector<char>>(coded_);
  sends_.push_back({step, message, ctx.send(message->data(), message->size(), 0)});
  if (results_.empty() || results_.front().step != step) {
    BRAID_CHECK(results_.empty(), "gradient coding: result of step ", results_.front().step,
                " pending at step ", step);
    auto memory = std::make_shared<std::vector<char>>(result_.size());
    results_.push_back({step, memory, ctx.recv(memory->data(), memory->size(), 0)});
  }
  Posted& mine = results_.front();
  if (!mine.done) ctx.wait(*mine.request);
  result_ = *mine.memory;
  results_.pop_front();
  if (results_through_.load() < step) results_through_ = step;
  prefetch(ctx, step);
}

// Receives of later steps' results, posted ahead for the operations of those steps (one
// operation per step on this channel, which the communicator checks): those that already
// arrived let the training thread skip computing (wants_gradients). At most one receive stays
// posted, kMaxAhead results held.
void GradientCodingStrategy::prefetch(OpContext& ctx, std::int64_t step) {
  for (;;) {
    if (!results_.empty() && !results_.back().done) {
      Posted& posted = results_.back();
      if (!arrived(*posted.request)) return;
      posted.done = true;
      results_through_ = posted.step;
    }
    const std::int64_t next = results_.empty() ? step + 1 : results_.back().step + 1;
    if (next - step > kMaxAhead) return;
    auto memory = std::make_shared<std::vector<char>>(result_.size());
    results_.push_back({next, memory,
                        ctx.recv_ahead(memory->data(), memory->size(), 0,
                                       static_cast<std::uint64_t>(next - step))});
  }
}

void GradientCodingStrategy::reap_sends(OpContext&) {
  sends_.erase(std::remove_if(sends_.begin(), sends_.end(),
                              [](Posted& send) { return send.request->test(); }),
               sends_.end());
}

// Every send completed and, on the root, every late message received; a member's receive
// posted ahead is cancelled (the next operation is not a step: its tag is not that step's).
void GradientCodingStrategy::drain(OpContext& ctx) {
  results_.clear();
  const bool done = poll_until(
      [&] {
        reap_sends(ctx);
        late_.reap(-1);  // no operation has tag -1: only discards what completed
        return sends_.empty() && late_.size() == 0;
      },
      ctx.deadline(), ctx.aborted());
  if (!done) {
    ctx.fail_wait(str_cat(sends_.size(), " coded-gradient sends and ", late_.size(),
                          " late coded gradients"));
  }
}

void GradientCodingStrategy::quiesce() {
  if (params_.empty()) return;
  OpDesc desc{"gradient_coding drain", code_.scheme(), 0, DType::kUInt8, 0};
  desc.forgets_ahead = true;  // drain() first cancels the receives of results posted ahead
  Work work = channel_->submit(desc, [this](OpContext& ctx) { drain(ctx); });
  work.wait();
}

void GradientCodingStrategy::apply_result(torch::optim::Optimizer& optimizer) {
  at::Tensor flat = at::from_blob(result_.data(), {length()}, at::TensorOptions(dtype_));
  std::int64_t offset = 0;
  for (at::Tensor& p : params_) {
    at::Tensor average = flat.narrow(0, offset, p.numel()).view(p.sizes());
    at::Tensor& grad = p.mutable_grad();
    if (grad.defined()) {
      grad.copy_(average);
    } else {
      grad = average.clone();
    }
    offset += p.numel();
  }
  global_loss_ = flat[count_].item<double>();
  const auto bad_parameter = static_cast<int>(flat[count_ + kParameterSlot].item<double>());
  if (bad_parameter >= 0) {
    if (!guard_->skips()) {
      guard_->raise(static_cast<int>(flat[count_ + kRankSlot].item<double>()),
                    {bad_parameter, steps_, /*pseudo_gradient=*/false});
    }
    guard_->count_skip();
    return;  // skip: no optimizer step
  }
  if (options_.clip_norm > 0) torch::nn::utils::clip_grad_norm_(params_, options_.clip_norm);
  trace::Scope scope("optimizer step", "compute");
  optimizer.step();
}

NamedTensors GradientCodingStrategy::state() const {
  return {{"steps", at::scalar_tensor(steps_, at::kLong)}};
}

void GradientCodingStrategy::load_state(const NamedTensors& state) {
  for (const auto& [name, tensor] : state) {
    if (name == "steps") steps_ = tensor.item<std::int64_t>();
  }
  results_through_ = steps_ - 1;
}

SyncStats GradientCodingStrategy::stats() const {
  SyncStats stats{comm_->bytes_sent() + channel_->bytes_sent(),
                  comm_->bytes_recv() + channel_->bytes_recv(), exposed_comm_s_};
  stats.bytes_dense = stats.bytes_sent;
  stats.skipped_steps = guard_ ? guard_->skipped() : 0;
  return stats;
}

}  // namespace braid
