#include "optimizers/compressed_exchange.h"

#include <ATen/ATen.h>

#include "collectives/collectives.h"
#include "collectives/tensor.h"
#include "common/error.h"

namespace braid {
namespace {
constexpr const char* kExchangePrefix = "exchange.";
}  // namespace

CompressedExchange::CompressedExchange(std::shared_ptr<Communicator> comm,
                                       const CompressedExchangeOptions& options)
    : comm_(std::move(comm)),
      memory_(make_bucket_memory(options.compression, options.error_feedback, options.eta,
                                 comm_->size(), options.clip_norm)),
      path_(make_bucket_exchange(options.compression, parse_error_feedback(options.error_feedback),
                                 comm_->size())),
      ring_(make_allreduce("ring")) {}

void CompressedExchange::set_layout(int bucket, BucketLayout layout) {
  path_->set_layout(bucket, std::move(layout));
}

Work CompressedExchange::launch(int bucket, at::Tensor gradients, at::Tensor usage,
                                std::int64_t step) {
  const int P = comm_->size();
  const auto dense = static_cast<std::uint64_t>(gradients.numel() * gradients.element_size());
  bytes_dense_.fetch_add(P > 1 ? dense * 2 * (P - 1) / P : 0, std::memory_order_relaxed);
  OpDesc desc{"compressed_allreduce", path_->path(), gradients.numel(), as_buffer(gradients).dtype};
  return comm_->submit(desc, [this, bucket, gradients, usage, step](OpContext& ctx) mutable {
    exchange(ctx, bucket, gradients, step);
    if (usage.numel() > 0) ring_->run(ctx, as_buffer(usage), ReduceOp::kSum);
  });
}

void CompressedExchange::exchange(OpContext& ctx, int bucket, at::Tensor& gradients,
                                  std::int64_t step) {
  at::Tensor input = memory_->prepare(bucket, gradients);
  at::Tensor mean = at::empty_like(gradients);
  at::Tensor delta = memory_->needs_delta() ? at::empty_like(gradients) : at::Tensor();
  path_->run(ctx, input, PayloadContext{bucket, step, ctx.rank()}, mean,
             delta.defined() ? &delta : nullptr);
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

bool CompressedExchange::state_is_replicated() const {
  return memory_->state_is_replicated() && path_->state_is_replicated();
}

}  // namespace braid
