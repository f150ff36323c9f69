#include "optimizers/allreduce_strategy.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

// After <torch/types.h>: clip_grad.h uses torch::Tensor without including it.
#include <torch/nn/utils/clip_grad.h>

#include <algorithm>
#include <chrono>

#include "collectives/tensor.h"
#include "common/error.h"
#include "common/trace.h"
#include "optimizers/replicas.h"
#include "optimizers/state_keys.h"

namespace braid {
namespace {

// Runs after autograd accumulated a parameter's gradient into .grad (a post hook of its
// AccumulateGrad node, as PyTorch DDP's Reducer registers): .grad then holds everything the
// user will step with, however many backward passes fed it.
class GradientAccumulated : public torch::autograd::FunctionPostHook {
 public:
  explicit GradientAccumulated(std::function<void()> on_accumulated)
      : on_accumulated_(std::move(on_accumulated)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    on_accumulated_();
    return outputs;
  }

 private:
  std::function<void()> on_accumulated_;
};

}  // namespace

AllreduceStrategy::AllreduceStrategy(std::shared_ptr<Communicator> comm,
                                     AllreduceStrategyOptions options)
    : comm_(std::move(comm)), options_(std::move(options)) {
  BRAID_CHECK(options_.bucket_mb > 0, "bucket_mb ", options_.bucket_mb);
  // Checked even for the mean: sync.byzantine > 0 with it is a mistake worth an error.
  check_aggregator(options_.robust.rule, comm_->size());
  check_attack(options_.robust.attack, comm_->size());
  if (robust_aggregation(options_.robust)) {
    robust_ = std::make_unique<RobustExchange>(comm_, options_.robust);
  }
}

AllreduceStrategy::~AllreduceStrategy() {
  for (auto& [accumulator, key] : hooks_) accumulator->del_post_hook(key);
  // Buckets in flight while an exception unwinds mean a step failed half-way: the ranks are out
  // of step, so break the communicator rather than wait for peers until the deadline. On a plain
  // exit they are a backward pass whose step never came (a GAN's generator phase sends the
  // discriminator's gradients): every rank launched them, so they complete.
  const bool in_flight =
      std::any_of(works_.begin(), works_.end(), [](const Work& w) { return !w.is_completed(); });
  if (in_flight && std::uncaught_exceptions() > 0) {
    comm_->abort("a sync strategy was destroyed with buckets in flight");
  }
  for (Work& work : works_) {
    try {
      work.wait();
    } catch (const std::exception&) {
      // The step that launched it already failed; its error was or will be reported there.
    }
  }
}

void AllreduceStrategy::attach(const NamedTensors& parameters) {
  BRAID_CHECK(params_.empty(), "attach() called twice");
  check_same_model(*comm_, parameters);
  for (const auto& [name, tensor] : parameters) {
    params_.push_back(tensor);
    names_.push_back(name);
  }
  guard_.emplace(options_.nonfinite, names_);
  CompressedExchangeOptions c = options_.compression;
  const bool compressed = c.compression.name != "none" || c.error_feedback != "none";
  // Plain allreduces of buckets in the node's shared memory take shm's in-place path.
  const std::string& a = options_.algorithm;
  const bool shared = !compressed && !robust_ && (a == "auto" || a == "shm" || a == "hierarchical");
  // Robust rules compare whole gradients: one bucket for all (1 TB is no cap).
  buckets_.emplace(params_, robust_ ? 1e6 : options_.bucket_mb, /*usage_slots=*/true,
                   shared ? GradBuckets::Allocate(
                                [this](std::size_t bytes) { return comm_->allocate_shared(bytes); })
                          : nullptr);
  algorithm_ = buckets_->in_allocated_block() ? comm_->registered_algorithm(a) : a;
  if (robust_ && buckets_->bucket_count() > 1) {
    throw ConfigError(str_cat("sync.aggregator ", options_.robust.rule.name, " of ", options_.label,
                              " needs every gradient in one bucket, so parameters of one dtype"));
  }
  if (compressed) {
    c.clip_norm = options_.clip_norm;  // the memory decides where clipping happens (dgc: locally)
    c.restore_on_skip = guard_->skips();
    exchange_ = std::make_unique<CompressedExchange>(comm_, c, buckets_->bucket_count());
    for (int b = 0; b < buckets_->bucket_count(); ++b)
      exchange_->set_layout(b, buckets_->layout(b));
  }
  make_replicas_identical(*comm_, params_, 0);
  // The accumulators are kept alive here: a parameter holds its own only weakly, and one made
  // afresh would not have the hook.
  for (int i = 0; i < static_cast<int>(params_.size()); ++i) {
    auto accumulator = torch::autograd::impl::grad_accumulator(params_[i]);
    if (!accumulator) continue;  // frozen now: its bucket is captured at step()
    const std::uintptr_t key = accumulator->add_post_hook(
        std::make_unique<GradientAccumulated>([this, i] { on_gradient(i); }));
    hooks_.emplace_back(std::move(accumulator), key);
  }
}

void AllreduceStrategy::on_gradient(int i) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!sync_) return;  // no_sync(): .grad accumulates; the last micro-step's backward sends it
  if (buckets_->bucket_of(i) < static_cast<int>(works_.size())) {
    // Another backward pass feeds this step, so what was sent is out of date: it goes again.
    refuse_resend(i, "got a gradient from another backward pass after its bucket was sent");
    drop_launched();
  }
  if (buckets_->arrive(i) && options_.overlap && !optimizer_exchanges()) {
    launch_ready_buckets(/*force=*/false);
  }
}

// Exchanging a bucket twice in a step is exact for an average, but not for a compressed
// exchange, whose error feedback would take in both.
void AllreduceStrategy::refuse_resend(int param, const std::string& what) const {
  const bool stateful = robust_ && robust_->keeps_state();
  if (!exchange_ && !stateful) return;
  const std::string why =
      exchange_
          ? str_cat("compression.name ", options_.compression.compression.name, ", error feedback ",
                    options_.compression.error_feedback, "): a compressed exchange")
          : std::string(
                "sync.aggregator centered_clip): an exchange that keeps its "
                "aggregate as the next step's center");
  throw Error(str_cat(
      "parameter '", names_[param], "' of ", options_.label, " ", what, " (", why,
      " cannot send one step's bucket twice. Ways out: call step() "
      "after every backward pass; run the earlier backward passes of a step inside no_sync(); "
      "freeze the parameters (requires_grad_(false)) in backward passes that must not train "
      "them; or set DataParallelOptions::overlap = false (sync.overlap: false), which sends "
      "every bucket at step()"));
}

// Waits for the buckets launched this step and forgets them; the next launches capture .grad
// again. Every rank does the same (the same program), so the collectives stay paired.
void AllreduceStrategy::drop_launched() {
  for (Work& work : works_) work.wait();
  works_.clear();
  buckets_->new_backward();
  first_nonfinite_ = -1;
}

void AllreduceStrategy::launch_ready_buckets(bool force) {
  while (static_cast<int>(works_.size()) < buckets_->bucket_count()) {
    const int b = static_cast<int>(works_.size());
    if (!force && !buckets_->complete(b)) return;
    buckets_->capture(b);
    const int bad = buckets_->check_finite(b);
    if (bad >= 0 && (first_nonfinite_ < 0 || bad < first_nonfinite_)) first_nonfinite_ = bad;
    if (compressing()) {
      works_.push_back(exchange_->launch(b, buckets_->gradients(b), buckets_->slots(b), steps_));
    } else if (robust_) {
      works_.push_back(robust_->launch(buckets_->gradients(b), buckets_->slots(b), steps_));
    } else {
      works_.push_back(comm_->allreduce(as_buffer(buckets_->flat(b)), ReduceOp::kAvg, algorithm_));
    }
  }
}

void AllreduceStrategy::wait_launched() {
  trace::Scope scope("wait for buckets", "comm");
  auto start = std::chrono::steady_clock::now();
  for (Work& work : works_) work.wait();
  works_.clear();
  exposed_comm_s_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void AllreduceStrategy::set_gradient_sync(bool enabled) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (enabled && !sync_) buckets_->new_backward();  // the next backward is the last micro-step
  sync_ = enabled;
}

void AllreduceStrategy::host_optimizer(ExchangingOptimizer& optimizer) {
  BRAID_CHECK(!hosted_, "host_optimizer() called twice");
  BRAID_CHECK(buckets_, "host_optimizer() before attach()");
  if (robust_) {
    throw ConfigError(str_cat("sync.aggregator ", options_.robust.rule.name, " and inject.attack ",
                              options_.robust.attack.name, " of ", options_.label,
                              " need every step's gradients, and this optimizer exchanges for "
                              "itself: use sync.aggregator mean without an attack"));
  }
  hosted_ = &optimizer;
  optimizer.connect(comm_);
}

// The averages of the buckets into .grad; a parameter no rank computed a gradient for gets none.
void AllreduceStrategy::give_averaged_gradients() {
  const std::vector<bool> used = buckets_->used_anywhere();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& grad = params_[i].mutable_grad();
    if (!used[i]) {
      grad = at::Tensor();  // no rank computed one: the optimizer must skip this parameter
      continue;
    }
    at::Tensor average = buckets_->view(static_cast<int>(i)).view(params_[i].sizes());
    if (grad.defined()) {
      grad.copy_(average);
    } else {
      grad = average.clone();
    }
  }
  // Every rank clips the same averaged gradient, so replicas stay identical.
  if (!(exchange_ && exchange_->clips_locally())) clip_gradients();
}

// Clips the parameters that have a .grad (those the optimizer steps) to clip_norm, if set. With
// a hosted optimizer exchanging for itself that is this rank's own gradient, the only one there is.
void AllreduceStrategy::clip_gradients() {
  if (options_.clip_norm <= 0) return;
  std::vector<at::Tensor> with_grad;
  for (const at::Tensor& p : params_) {
    if (p.grad().defined()) with_grad.push_back(p);
  }
  torch::nn::utils::clip_grad_norm_(with_grad, options_.clip_norm);
}

void AllreduceStrategy::step(torch::optim::Optimizer& optimizer) {
  auto* exchanging = dynamic_cast<ExchangingOptimizer*>(&optimizer);
  BRAID_CHECK(exchanging == hosted_, "step(): ",
              exchanging ? "this optimizer exchanges for itself: call host_optimizer() with it "
                           "before the first backward"
                         : "not the optimizer given to host_optimizer()");
  const bool local = optimizer_exchanges();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    BRAID_CHECK(sync_, "step() inside no_sync(): the last micro-step must synchronise");
    if (!local) launch_ready_buckets(/*force=*/true);
  }
  wait_launched();
  if (!local) resend_changed_buckets();
  if (nonfinite_step(local)) {
    end_step();  // skip: no optimizer step
    return;
  }
  if (local) {
    clip_gradients();
  } else {
    give_averaged_gradients();
  }
  const std::uint64_t sent_before = comm_->bytes_sent();
  {
    trace::Scope scope("optimizer step", "compute");
    optimizer.step();
  }
  if (local) {
    optimizer_bytes_sent_ += comm_->bytes_sent() - sent_before;
    const int P = comm_->size();
    std::uint64_t dense = 0;
    for (const at::Tensor& p : params_) dense += p.numel() * p.element_size();
    optimizer_bytes_dense_ += P > 1 ? dense * 2 * (P - 1) / P : 0;
  }
  end_step();
}

// .grad changed after its bucket was sent and no backward pass came after (zero_grad() or an
// in-place edit before step()): the step uses what .grad holds, so every bucket goes again.
void AllreduceStrategy::resend_changed_buckets() {
  for (int b = 0; b < buckets_->bucket_count(); ++b) {
    const int changed = buckets_->changed_since_capture(b);
    if (changed < 0) continue;
    refuse_resend(changed, "had its .grad changed after its bucket was sent");
    {
      std::lock_guard<std::mutex> lock(mutex_);
      drop_launched();  // waited for already; this also forgets their non-finite finding
      launch_ready_buckets(/*force=*/true);
    }
    wait_launched();
    return;
  }
}

bool AllreduceStrategy::nonfinite_step(bool local) {
  if (local) {
    // Nothing was exchanged: check this rank's own gradients, and agree on them in one allgather.
    for (int i = 0; i < static_cast<int>(params_.size()) && first_nonfinite_ < 0; ++i) {
      const at::Tensor& grad = params_[i].grad();
      if (grad.defined() && !all_finite(grad)) first_nonfinite_ = i;
    }
    return guard_->agree(*comm_, {first_nonfinite_, steps_});
  }
  for (int b = 0; b < buckets_->bucket_count(); ++b) {
    if (buckets_->nonfinite_anywhere(b)) {
      guard_->on_agreed(*comm_, {first_nonfinite_, steps_});
      return true;
    }
  }
  return false;
}

// The step clock advances on a skipped step too: it is the trainer's step (seeds, messages).
void AllreduceStrategy::end_step() {
  buckets_->reset();
  first_nonfinite_ = -1;
  // A dense step sent what it would have sent uncompressed.
  if (exchange_ && !compressing()) dense_sent_ += comm_->bytes_sent() - step_start_sent_;
  step_start_sent_ = comm_->bytes_sent();
  ++steps_;
}

void AllreduceStrategy::quiesce() {
  // Between steps nothing is in flight. Buckets launched by a backward whose step never came
  // are finished here, so a checkpoint never races the communication thread; their gradients
  // are dropped and the next backward starts afresh.
  std::vector<Work> in_flight;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    in_flight.swap(works_);
    buckets_->reset();
    first_nonfinite_ = -1;
  }
  for (Work& work : in_flight) work.wait();
}

SyncStats AllreduceStrategy::stats() const {
  SyncStats stats{comm_->bytes_sent(), comm_->bytes_recv(),
                  exposed_comm_s_ + (hosted_ ? hosted_->exchange_wait_s() : 0)};
  stats.bytes_dense = (exchange_ ? exchange_->bytes_dense() + dense_sent_
                                 : stats.bytes_sent - optimizer_bytes_sent_) +
                      optimizer_bytes_dense_;
  // The robust exchange as the ring allreduce it replaces (its statistics are the overhead).
  if (robust_)
    stats.bytes_dense = stats.bytes_dense - robust_->bytes_sent() + robust_->bytes_dense();
  stats.bytes_shared = comm_->shared_memory_bytes();
  stats.skipped_steps = guard_ ? guard_->skipped() : 0;
  return stats;
}

bool AllreduceStrategy::state_is_replicated() const {
  return (!exchange_ || exchange_->state_is_replicated()) &&
         (!hosted_ || hosted_->state_is_replicated());
}

std::string AllreduceStrategy::per_rank_state() const {
  if (hosted_ && !hosted_->state_is_replicated()) {
    return "the hosted optimizer's error buffers (optimizer.name onebit_adam)";
  }
  return per_rank_residuals(options_.compression);
}

bool AllreduceStrategy::per_rank_state_may_reset() const {
  return (!exchange_ || exchange_->state_is_replicated()) && hosted_ &&
         hosted_->per_rank_state_may_reset();
}

void AllreduceStrategy::reset_per_rank_state_on_load() {
  if (hosted_) hosted_->reset_per_rank_state_on_load();
}

NamedTensors AllreduceStrategy::state() const {
  NamedTensors state = exchange_ ? exchange_->state() : NamedTensors{};
  if (robust_) {
    for (auto& entry : robust_->state()) state.push_back(std::move(entry));
  }
  state.emplace_back("steps", at::scalar_tensor(steps_, at::kLong));
  return state;
}

void AllreduceStrategy::load_state(const NamedTensors& state) {
  NamedTensors feedback, aggregator;
  for (const auto& [name, tensor] : state) {
    if (name == "steps") {
      steps_ = tensor.item<std::int64_t>();
    } else if (starts_with(name, kAggregatorPrefix)) {
      aggregator.emplace_back(name, tensor);
    } else {
      feedback.emplace_back(name, tensor);
    }
  }
  if (exchange_) exchange_->load_state(feedback);
  if (robust_) robust_->load_state(aggregator);
}

}  // namespace braid
