#include "optimizers/compressed_exchange.h"

#include <ATen/ATen.h>

#include "collectives/collectives.h"
#include "collectives/tensor.h"
#include "common/error.h"

namespace braid {

CompressedExchange::CompressedExchange(std::shared_ptr<Communicator> comm,
                                       const CompressedExchangeOptions& options)
    : comm_(std::move(comm)),
      compressor_(make_compressor(options.compression)),
      feedback_(std::make_unique<ErrorFeedback>(parse_error_feedback(options.error_feedback),
                                                options.eta)),
      ring_(make_allreduce("ring")),
      kind_(parse_error_feedback(options.error_feedback)) {}

Work CompressedExchange::launch(int bucket, at::Tensor gradients, at::Tensor usage,
                                std::int64_t step) {
  const int P = comm_->size();
  const auto dense = static_cast<std::uint64_t>(gradients.numel() * gradients.element_size());
  bytes_dense_.fetch_add(P > 1 ? dense * 2 * (P - 1) / P : 0, std::memory_order_relaxed);
  OpDesc desc{"compressed_allreduce", compressor_->name(), gradients.numel(),
              as_buffer(gradients).dtype};
  return comm_->submit(desc, [this, bucket, gradients, usage, step](OpContext& ctx) mutable {
    exchange(ctx, bucket, gradients, step);
    ring_->run(ctx, as_buffer(usage), ReduceOp::kSum);
  });
}

void CompressedExchange::exchange(OpContext& ctx, int bucket, at::Tensor& gradients,
                                  std::int64_t step) {
  const int P = ctx.size();
  std::vector<std::uint8_t> mine =
      feedback_->encode(bucket, gradients, *compressor_, PayloadContext{bucket, step, ctx.rank()});
  at::Tensor sum = at::zeros_like(gradients);
  if (compressor_->summable()) {
    const DType wire = compressor_->wire_dtype();
    BRAID_CHECK(mine.size() % dtype_size(wire) == 0, compressor_->name(),
                ": a summable payload of ", mine.size(), " bytes");
    ring_->run(ctx,
               Buffer{mine.data(), static_cast<std::int64_t>(mine.size() / dtype_size(wire)), wire},
               ReduceOp::kSum);
    compressor_->decode(mine.data(), mine.size(), sum, PayloadContext{bucket, step, ctx.rank()});
  } else {
    const std::vector<std::vector<std::uint8_t>> all = allgather_bytes(ctx, mine);
    for (int r = 0; r < P; ++r) {
      compressor_->decode_add(all[r].data(), all[r].size(), sum, PayloadContext{bucket, step, r});
    }
  }
  sum.div_(P);
  feedback_->finish(bucket, sum);
  gradients.copy_(sum);
}

NamedTensors CompressedExchange::state() const { return feedback_->state(); }

void CompressedExchange::load_state(const NamedTensors& state) { feedback_->load_state(state); }

bool CompressedExchange::state_is_replicated() const { return kind_ == ErrorFeedbackKind::kNone; }

}  // namespace braid
