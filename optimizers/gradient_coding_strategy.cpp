#include "optimizers/gradient_coding_strategy.h"

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "collectives/tensor.h"
#include "common/error.h"
#include "common/trace.h"
#include "optimizers/replicas.h"

namespace braid {

GradientCodingStrategy::GradientCodingStrategy(std::shared_ptr<Communicator> comm,
                                               GradientCodingOptions options)
    : comm_(std::move(comm)),
      options_(std::move(options)),
      code_(options_.scheme, comm_->size(), options_.stragglers) {
  channel_ = comm_->channel(comm_->options());
}

GradientCodingStrategy::~GradientCodingStrategy() {
  if (!params_.empty()) results_.close(*channel_, "gradient_coding drain", code_.scheme());
}

void GradientCodingStrategy::attach(const NamedTensors& parameters) {
  BRAID_CHECK(params_.empty(), "attach() called twice");
  check_same_model(*comm_, parameters);
  FlatParameters flat = flat_parameters(parameters, "gradient coding");
  guard_.emplace(options_.nonfinite, std::move(flat.names));
  params_ = std::move(flat.tensors);
  dtype_ = flat.dtype;
  count_ = flat.count;
  const std::size_t bytes = length() * c10::elementSize(dtype_);
  coded_.assign(bytes, 0);
  result_.assign(bytes, 0);
  make_replicas_identical(*comm_, params_, 0);
}

BatchAssignment GradientCodingStrategy::assign_batch(std::int64_t, int rank, int world) const {
  BRAID_CHECK(world == code_.workers(), "gradient code for ", code_.workers(), " ranks, asked for ",
              world);
  assigned_ = true;
  BatchAssignment out;
  out.partitions = code_.partitions(rank);
  out.weights = code_.weights(rank);
  return out;
}

bool GradientCodingStrategy::wants_gradients() {
  computed_ = channel_->rank() == 0 || results_.results_through() < steps_;
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
  results_.reap_root(ctx);
  const int n = ctx.size(), k = n - code_.stragglers();
  const DType dtype = dtype_of(dtype_);
  std::vector<char> gathered(k * coded_.size());
  const std::vector<int> ranks =
      gather_first_k(ctx, Buffer{coded_.data(), length(), dtype},
                     Buffer{gathered.data(), k * (length()), dtype}, k, 0, results_.late());
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
  results_.send_result(ctx, step, memory, result_);
}

void GradientCodingStrategy::run_member(OpContext& ctx, std::int64_t step) {
  results_.member_step(ctx, step, coded_, result_);
}

void GradientCodingStrategy::quiesce() {
  if (!params_.empty()) results_.quiesce(*channel_, "gradient_coding drain", code_.scheme());
}

void GradientCodingStrategy::apply_result(torch::optim::Optimizer& optimizer) {
  at::Tensor flat = at::from_blob(result_.data(), {length()}, at::TensorOptions(dtype_));
  global_loss_ = flat[count_].item<double>();
  apply_decoded(params_, flat, static_cast<int>(flat[count_ + kParameterSlot].item<double>()),
                static_cast<int>(flat[count_ + kRankSlot].item<double>()), steps_, *guard_,
                options_.clip_norm, optimizer);
}

NamedTensors GradientCodingStrategy::state() const {
  return {{"steps", at::scalar_tensor(steps_, at::kLong)}};
}

void GradientCodingStrategy::load_state(const NamedTensors& state) {
  for (const auto& [name, tensor] : state) {
    if (name == "steps") steps_ = tensor.item<std::int64_t>();
  }
  results_.restart_at(steps_);
}

SyncStats GradientCodingStrategy::stats() const {
  SyncStats stats{comm_->bytes_sent() + channel_->bytes_sent(),
                  comm_->bytes_recv() + channel_->bytes_recv(), exposed_comm_s_};
  stats.bytes_dense = stats.bytes_sent;
  stats.skipped_steps = guard_ ? guard_->skipped() : 0;
  return stats;
}

}  // namespace braid
