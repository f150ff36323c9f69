#include "optimizers/allreduce_strategy.h"

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>

#include <chrono>

#include "collectives/tensor.h"
#include "common/error.h"
#include "optimizers/replicas.h"

namespace braid {

AllreduceStrategy::AllreduceStrategy(std::shared_ptr<Communicator> comm,
                                     AllreduceStrategyOptions options)
    : comm_(std::move(comm)), options_(std::move(options)) {
  BRAID_CHECK(options_.bucket_mb > 0, "bucket_mb ", options_.bucket_mb);
}

AllreduceStrategy::~AllreduceStrategy() {
  for (std::size_t i = 0; i < params_.size(); ++i) params_[i].remove_hook(hooks_[i]);
}

void AllreduceStrategy::attach(const NamedTensors& parameters) {
  BRAID_CHECK(params_.empty(), "attach() called twice");
  check_same_model(*comm_, parameters);
  for (const auto& [name, tensor] : parameters) params_.push_back(tensor);
  const int n = static_cast<int>(params_.size());
  bucket_of_.assign(n, -1);
  offset_of_.assign(n, 0);
  arrived_.assign(n, false);

  // Reverse registration order approximates the order backward produces gradients.
  const auto cap = static_cast<std::int64_t>(options_.bucket_mb * (1 << 20));
  std::vector<std::int64_t> sizes;
  for (int i = n - 1; i >= 0; --i) {
    const at::Tensor& p = params_[i];
    const std::int64_t bytes = p.numel() * static_cast<std::int64_t>(p.element_size());
    bool fits = !buckets_.empty() && buckets_.back().flat.scalar_type() == p.scalar_type() &&
                (sizes.back() + bytes <= cap);
    if (!fits) {
      buckets_.emplace_back();
      buckets_.back().flat = at::empty({0}, p.options().requires_grad(false));
      sizes.push_back(0);
    }
    bucket_of_[i] = static_cast<int>(buckets_.size()) - 1;
    offset_of_[i] = sizes.back() / static_cast<std::int64_t>(p.element_size());
    sizes.back() += bytes;
    buckets_.back().params.push_back(i);
  }
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    bucket.flat = at::zeros({sizes[b] / static_cast<std::int64_t>(bucket.flat.element_size())},
                            bucket.flat.options());
    bucket.pending = static_cast<int>(bucket.params.size());
  }

  broadcast_parameters(*comm_, params_, 0);
  check_replicas_identical(*comm_, params_);
  for (int i = 0; i < n; ++i) {
    hooks_.push_back(
        params_[i].register_hook([this, i](const at::Tensor& grad) { on_gradient(i, grad); }));
  }
}

at::Tensor AllreduceStrategy::slice_of(int i) {
  return buckets_[bucket_of_[i]].flat.narrow(0, offset_of_[i], params_[i].numel());
}

void AllreduceStrategy::on_gradient(int i, const at::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mutex_);
  Bucket& bucket = buckets_[bucket_of_[i]];
  if (bucket.launched) {
    throw Error(str_cat("parameter ", i,
                        " received a second gradient after its bucket was sent; "
                        "call step() after every backward (gradient accumulation across "
                        "backward calls needs sync.overlap=false)"));
  }
  at::Tensor slice = slice_of(i);
  if (arrived_[i]) {
    slice.add_(grad.reshape({-1}));
    return;
  }
  slice.copy_(grad.reshape({-1}));
  arrived_[i] = true;
  --bucket.pending;
  if (options_.overlap) launch_ready_buckets(/*force=*/false);
}

void AllreduceStrategy::launch_ready_buckets(bool force) {
  while (next_launch_ < buckets_.size()) {
    Bucket& bucket = buckets_[next_launch_];
    if (bucket.pending > 0) {
      if (!force) return;
      // Parameters without a gradient this step contribute zeros.
      for (int i : bucket.params) {
        if (!arrived_[i]) slice_of(i).zero_();
      }
    }
    bucket.work = comm_->allreduce(as_buffer(bucket.flat), ReduceOp::kAvg, options_.algorithm);
    bucket.launched = true;
    ++next_launch_;
  }
}

void AllreduceStrategy::step(torch::optim::Optimizer& optimizer) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    launch_ready_buckets(/*force=*/true);
  }
  auto start = std::chrono::steady_clock::now();
  for (Bucket& bucket : buckets_) bucket.work.wait();
  exposed_comm_s_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& grad = params_[i].mutable_grad();
    at::Tensor average = slice_of(static_cast<int>(i)).view(params_[i].sizes());
    if (grad.defined()) {
      grad.copy_(average);
    } else {
      grad = average.clone();
    }
  }
  optimizer.step();

  std::fill(arrived_.begin(), arrived_.end(), false);
  for (Bucket& bucket : buckets_) {
    bucket.pending = static_cast<int>(bucket.params.size());
    bucket.launched = false;
  }
  next_launch_ = 0;
}

SyncStats AllreduceStrategy::stats() const {
  return {comm_->bytes_sent(), comm_->bytes_recv(), exposed_comm_s_};
}

}  // namespace braid
