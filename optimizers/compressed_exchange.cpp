#include "optimizers/compressed_exchange.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>

#include "collectives/collectives.h"
#include "collectives/tensor.h"
#include "common/error.h"
#include "optimizers/state_keys.h"

namespace braid {
namespace {

// The bucket a state entry belongs to: every memory and path names them "<bucket>.<field>".
int bucket_of(const std::string& name) { return std::atoi(name.c_str()); }

bool among(const std::vector<int>& buckets, int bucket) {
  return std::find(buckets.begin(), buckets.end(), bucket) != buckets.end();
}

// The entries of `buckets` replaced by `saved` (which holds every entry those buckets had).
NamedTensors with_saved(const NamedTensors& current, const std::vector<int>& buckets,
                        const NamedTensors& saved) {
  NamedTensors state;
  for (const auto& [name, tensor] : current)
    if (!among(buckets, bucket_of(name))) state.emplace_back(name, tensor);
  state.insert(state.end(), saved.begin(), saved.end());
  return state;
}

}  // namespace

CompressedExchange::CompressedExchange(std::shared_ptr<Communicator> comm,
                                       const CompressedExchangeOptions& options, int buckets)
    : comm_(std::move(comm)),
      memory_(make_bucket_memory(options.compression, options.error_feedback, options.eta,
                                 comm_->size(), options.clip_norm)),
      path_(make_bucket_exchange(options.compression, parse_error_feedback(options.error_feedback),
                                 comm_->size())),
      ring_(make_allreduce("ring")),
      buckets_(buckets),
      restore_on_skip_(options.restore_on_skip) {}

void CompressedExchange::set_layout(int bucket, BucketLayout layout) {
  memory_->set_layout(bucket, layout);
  path_->set_layout(bucket, std::move(layout));
}

Work CompressedExchange::launch(int bucket, at::Tensor gradients, at::Tensor slots,
                                std::int64_t step) {
  const int P = comm_->size();
  const auto dense = static_cast<std::uint64_t>(gradients.numel() * gradients.element_size());
  bytes_dense_.fetch_add(P > 1 ? dense * 2 * (P - 1) / P : 0, std::memory_order_relaxed);
  OpDesc desc{"compressed_allreduce", path_->path(), gradients.numel(), as_buffer(gradients).dtype};
  BRAID_CHECK(slots.numel() > 0, "bucket ", bucket, " has no non-finite slot");
  return comm_->submit(desc, [this, bucket, gradients, slots, step](OpContext& ctx) mutable {
    ring_->run(ctx, as_buffer(slots), ReduceOp::kSum);
    const bool flagged = slots[slots.numel() - 1].item<double>() != 0;
    if (admit(bucket, flagged)) exchange(ctx, bucket, gradients, step);
  });
}

bool CompressedExchange::admit(int bucket, bool flagged) {
  if (bucket == 0) {  // a new step
    flagged_step_ = false;
    saved_buckets_.clear();
    saved_memory_.clear();
    saved_path_.clear();
  }
  if (flagged && !flagged_step_) {
    flagged_step_ = true;
    restore_saved_state();
  }
  if (flagged_step_) return false;
  // The last bucket's flag is the step's last word: its state needs no copy.
  if (restore_on_skip_ && bucket + 1 < buckets_) save_bucket_state(bucket);
  return true;
}

void CompressedExchange::save_bucket_state(int bucket) {
  saved_buckets_.push_back(bucket);
  for (const auto& [name, tensor] : memory_->state())
    if (bucket_of(name) == bucket) saved_memory_.emplace_back(name, tensor.clone());
  for (const auto& [name, tensor] : path_->state())
    if (bucket_of(name) == bucket) saved_path_.emplace_back(name, tensor.clone());
}

// A bucket with no state before its exchange (its first step) gets none back: the memory creates
// it afresh, as it would have.
void CompressedExchange::restore_saved_state() {
  if (saved_buckets_.empty()) return;
  memory_->load_state(with_saved(memory_->state(), saved_buckets_, saved_memory_));
  path_->load_state(with_saved(path_->state(), saved_buckets_, saved_path_));
}

void CompressedExchange::exchange(OpContext& ctx, int bucket, at::Tensor& gradients,
                                  std::int64_t step) {
  const bool dense = memory_->starts_dense(bucket);
  at::Tensor input = memory_->prepare(bucket, gradients);
  at::Tensor mean = at::empty_like(gradients);
  at::Tensor delta = memory_->needs_delta() ? at::empty_like(gradients) : at::Tensor();
  if (dense) {
    // The ring leaves every rank the same sum, so h stays bitwise the same everywhere.
    mean.copy_(input);
    ring_->run(ctx, as_buffer(mean), ReduceOp::kSum);
    mean.div_(ctx.size());
    if (delta.defined()) delta.copy_(input);
  } else {
    path_->run(ctx, input, PayloadContext{bucket, step, ctx.rank()}, mean,
               delta.defined() ? &delta : nullptr);
  }
  if (delta.defined()) memory_->commit(bucket, gradients, input, delta);
  memory_->finish(bucket, mean);
  gradients.copy_(mean);
}

NamedTensors CompressedExchange::state() const {
  NamedTensors state = memory_->state();
  for (const auto& [name, tensor] : path_->state())
    state.emplace_back(kExchangePrefix + name, tensor);
  return state;
}

void CompressedExchange::load_state(const NamedTensors& state) {
  NamedTensors feedback, path;
  for (const auto& [name, tensor] : state) {
    if (name.rfind(kExchangePrefix, 0) == 0) {
      path.emplace_back(name.substr(std::string(kExchangePrefix).size()), tensor);
    } else {
      feedback.emplace_back(name, tensor);
    }
  }
  memory_->load_state(feedback);
  path_->load_state(path);
}

std::string per_rank_residuals(const CompressedExchangeOptions& options) {
  return str_cat("the compression's residuals (compression.name '", options.compression.name,
                 "', compression.error_feedback '", options.error_feedback, "')");
}

bool CompressedExchange::state_is_replicated() const {
  return memory_->state_is_replicated() && path_->state_is_replicated();
}

}  // namespace braid
