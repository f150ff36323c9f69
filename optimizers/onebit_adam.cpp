// 1-bit Adam (Tang et al., ICML 2021): warm-up with exact distributed Adam, then frozen variance
// and the momentum exchanged by the two-phase compressed allreduce with worker and server error
// feedback: m = C_allreduce(b1 m + (1 - b1) g_r); x -= lr (m / (sqrt(v_frozen) + eps) + wd x).
// See onebit_adam.h for the bias-correction and compressor choices.
#include "optimizers/onebit_adam.h"

#include <ATen/ATen.h>
#include <torch/serialize/archive.h>

#include <chrono>
#include <cmath>

#include "collectives/communicator.h"
#include "collectives/tensor.h"
#include "common/error.h"
#include "common/trace.h"
#include "compression/compressor_sign.h"
#include "optimizers/step_closure.h"

namespace braid {
namespace {

constexpr int kBucket = 0;  // the whole flat momentum is one bucket of the exchange
const char* const kWorkerPrefix = "worker.";
const char* const kServerPrefix = "server.";

}  // namespace

OnebitAdam::OnebitAdam(std::vector<at::Tensor> parameters, const OnebitAdamOptions& options)
    : torch::optim::Optimizer(std::move(parameters), std::make_unique<OnebitAdamOptions>(options)),
      server_(std::make_unique<CompressorSign>(), /*server_feedback=*/true) {
  const OnebitAdamOptions& o = options;
  if (!(o.lr >= 0 && o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1 && o.eps > 0 &&
        o.weight_decay >= 0 && o.freeze_step >= 0)) {
    throw ConfigError(str_cat("onebit_adam: lr ", o.lr, ", betas (", o.beta1, ", ", o.beta2,
                              "), eps ", o.eps, ", weight_decay ", o.weight_decay, ", freeze_step ",
                              o.freeze_step, " out of range"));
  }
}

const OnebitAdamOptions& OnebitAdam::options() const {
  return static_cast<const OnebitAdamOptions&>(defaults());
}

void OnebitAdam::allocate_state() {
  if (m_.defined()) return;
  BRAID_CHECK(param_groups().size() == 1, "onebit_adam supports one parameter group, got ",
              param_groups().size());
  const std::vector<at::Tensor>& params = param_groups()[0].params();
  BRAID_CHECK(!params.empty(), "onebit_adam: no parameters");
  std::int64_t total = 0;
  offsets_.clear();
  for (const at::Tensor& p : params) {
    BRAID_CHECK(p.device().is_cpu() && p.scalar_type() == params[0].scalar_type() &&
                    at::isFloatingType(p.scalar_type()),
                "onebit_adam: parameters must be CPU tensors of one floating dtype");
    offsets_.push_back(total);
    total += p.numel();
  }
  m_ = at::zeros({total}, params[0].options().requires_grad(false));
  v_ = at::zeros_like(m_);
}

at::Tensor OnebitAdam::view_of(const at::Tensor& flat, std::size_t param) const {
  const at::Tensor& p = param_groups()[0].params()[param];
  return flat.narrow(0, offsets_[param], p.numel()).view(p.sizes());
}

at::Tensor OnebitAdam::step(LossClosure closure) {
  const at::Tensor loss = evaluate_closure(closure);
  at::NoGradGuard no_grad;
  allocate_state();
  const double lr = param_groups()[0].options().get_lr();
  const bool compress = exchanges_next_step();
  ++steps_;
  if (compress) {
    compressed_step(lr);
  } else {
    warmup_step(lr);
  }
  return loss;
}

// Exactly torch::optim::AdamW's operations, on views of the flat state, with the step count
// shared by all parameters.
void OnebitAdam::warmup_step(double lr) {
  const OnebitAdamOptions& o = options();
  const double correction1 = 1 - std::pow(o.beta1, static_cast<double>(steps_));
  const double correction2 = 1 - std::pow(o.beta2, static_cast<double>(steps_));
  const std::vector<at::Tensor>& params = param_groups()[0].params();
  for (std::size_t i = 0; i < params.size(); ++i) {
    at::Tensor p = params[i];
    const at::Tensor& grad = p.grad();
    if (!grad.defined()) continue;  // no rank computed one, as torch's Adam skips it
    if (o.weight_decay != 0) p.mul_(1 - lr * o.weight_decay);
    at::Tensor m = view_of(m_, i), v = view_of(v_, i);
    m.mul_(o.beta1).add_(grad, 1 - o.beta1);
    v.mul_(o.beta2).addcmul_(grad, grad, 1 - o.beta2);
    at::Tensor denom = (v.sqrt() / std::sqrt(correction2)).add_(o.eps);
    p.addcdiv_(m, denom, -lr / correction1);
  }
}

void OnebitAdam::compressed_step(double lr) {
  const OnebitAdamOptions& o = options();
  BRAID_CHECK(comm_,
              "onebit_adam reached its compression phase without a communicator: host it "
              "in the sync strategy first (SyncStrategy::host_optimizer)");
  at::Tensor input = m_.mul(o.beta1).add_(flat_gradient(), 1 - o.beta1);
  exchange_momentum(input);
  // Coordinates that never had a gradient in the warm-up (unused embedding rows, always-zero
  // inputs) froze with v = 0: sign compression never sends them a zero, and m / eps would throw
  // them off by lr * scale / eps per step. Their momentum is zeroed (DeepSpeed's exp_avg_mask,
  // derived here from v). With freeze_step 0 every v is 0 and nothing is masked.
  if (o.freeze_step > 0) m_.masked_fill_(v_ == 0, 0);
  const double correction1 = 1 - std::pow(o.beta1, static_cast<double>(steps_));
  // v froze with its bias correction at step F (none to apply when F = 0: v stayed 0).
  const double correction2 =
      o.freeze_step > 0 ? 1 - std::pow(o.beta2, static_cast<double>(o.freeze_step)) : 1.0;
  at::Tensor denom = (v_.sqrt() / std::sqrt(correction2)).add_(o.eps);
  const std::vector<at::Tensor>& params = param_groups()[0].params();
  for (std::size_t i = 0; i < params.size(); ++i) {
    at::Tensor p = params[i];
    if (o.weight_decay != 0) p.mul_(1 - lr * o.weight_decay);
    p.addcdiv_(view_of(m_, i), view_of(denom, i), -lr / correction1);
  }
}

// This rank's own gradients, flat; zeros where it computed none.
at::Tensor OnebitAdam::flat_gradient() const {
  at::Tensor flat = at::zeros_like(m_);
  const std::vector<at::Tensor>& params = param_groups()[0].params();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& grad = params[i].grad();
    if (grad.defined()) view_of(flat, i).copy_(grad);
  }
  return flat;
}

// m = C_allreduce(input) on the communication thread, with error feedback at worker and server.
void OnebitAdam::exchange_momentum(const at::Tensor& input) {
  trace::Scope scope("onebit_adam momentum exchange", "comm");
  at::Tensor mean = at::empty_like(input);
  const std::int64_t step = steps_;
  OpDesc desc{"onebit_adam_momentum", "two_phase", input.numel(), as_buffer(input).dtype};
  Work work = comm_->submit(desc, [this, &input, &mean, step](OpContext& ctx) {
    at::Tensor corrected = worker_.prepare(kBucket, input);
    at::Tensor delta = at::empty_like(input);
    server_.run(ctx, corrected, PayloadContext{kBucket, step, ctx.rank()}, mean, &delta);
    worker_.commit(kBucket, input, corrected, delta);
  });
  const auto start = std::chrono::steady_clock::now();
  work.wait();
  exchange_wait_s_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m_.copy_(mean);
}

at::Tensor OnebitAdam::worker_error() const {
  for (const auto& [name, tensor] : worker_.state()) {
    if (name == str_cat(kBucket, ".error")) return tensor;
  }
  return m_.defined() ? at::zeros_like(m_) : at::Tensor();
}

at::Tensor OnebitAdam::server_error() const {
  const ErrorFeedback::NamedTensors state = server_.state();
  return state.empty() ? at::Tensor() : state.front().second;
}

void OnebitAdam::save(torch::serialize::OutputArchive& archive) const {
  archive.write("steps", at::scalar_tensor(steps_, at::kLong));
  if (!m_.defined()) return;
  archive.write("m", m_);
  archive.write("v", v_);
  for (const auto& [name, tensor] : worker_.state()) archive.write(kWorkerPrefix + name, tensor);
  for (const auto& [name, tensor] : server_.state()) archive.write(kServerPrefix + name, tensor);
}

void OnebitAdam::check_loaded(const char* name, const at::Tensor& tensor,
                              std::int64_t numel) const {
  if (tensor.numel() != numel || tensor.scalar_type() != m_.scalar_type()) {
    throw CheckpointError(str_cat("onebit_adam state '", name, "' has ", tensor.numel(), " ",
                                  tensor.scalar_type(), " elements; the model needs ", numel, " ",
                                  m_.scalar_type()));
  }
}

void OnebitAdam::load(torch::serialize::InputArchive& archive) {
  at::Tensor steps, m, v;
  archive.read("steps", steps);
  const bool has_state = archive.try_read("m", m);
  if (has_state) archive.read("v", v);
  allocate_state();
  const std::int64_t d = m_.numel();
  ErrorFeedback::NamedTensors worker, server;
  for (const char* field : {"error", "estimate", "mean_estimate"}) {
    at::Tensor t;
    const std::string name = str_cat(kBucket, ".", field);
    if (archive.try_read(kWorkerPrefix + name, t)) {
      check_loaded(field, t, d);
      worker.emplace_back(name, t);
    }
  }
  const std::string server_name = str_cat(kBucket, ".server_error");
  if (reset_errors_on_load_) {
    worker.clear();  // another rank count: the errors start again from zero (see the header)
  } else if (at::Tensor t; archive.try_read(kServerPrefix + server_name, t)) {
    if (comm_)
      check_loaded("server_error", t,
                   TwoPhaseExchange::chunk(d, comm_->size(), comm_->rank()).second);
    server.emplace_back(server_name, t);
  }
  if (has_state) {
    check_loaded("m", m, d);
    check_loaded("v", v, d);
  }
  worker_.load_state(worker);
  server_.load_state(server);
  m_.copy_(has_state ? m : at::zeros_like(m_));
  v_.copy_(has_state ? v : at::zeros_like(v_));
  steps_ = steps.item<std::int64_t>();
  reset_errors_on_load_ = false;
}

}  // namespace braid
