#include "compression/two_phase_exchange.h"

#include <ATen/ATen.h>

#include <cstdlib>

#include "collectives/collectives.h"
#include "common/error.h"

namespace braid {

TwoPhaseExchange::TwoPhaseExchange(std::unique_ptr<Compressor> compressor, bool server_feedback)
    : compressor_(std::move(compressor)), server_feedback_(server_feedback) {}

std::pair<std::int64_t, std::int64_t> TwoPhaseExchange::chunk(std::int64_t n, int parts, int c) {
  const std::int64_t base = n / parts, extra = n % parts;
  return {c * base + std::min<std::int64_t>(c, extra), base + (c < extra ? 1 : 0)};
}

void TwoPhaseExchange::run(OpContext& ctx, const at::Tensor& input, const PayloadContext& context,
                           at::Tensor& mean, at::Tensor* delta) {
  const int P = ctx.size(), me = ctx.rank();
  const std::int64_t n = input.numel();
  std::vector<std::vector<std::uint8_t>> to_owner(P);
  for (int c = 0; c < P; ++c) {
    auto [offset, count] = chunk(n, P, c);
    PayloadContext part{context.bucket, context.step, me, c, 0, offset};
    to_owner[c] = compressor_->encode(input.narrow(0, offset, count).contiguous(), part);
    if (delta) {
      at::Tensor view = delta->narrow(0, offset, count);  // a 1-D run: contiguous
      compressor_->decode(to_owner[c].data(), to_owner[c].size(), view, part);
    }
  }
  auto [my_offset, my_count] = chunk(n, P, me);
  at::Tensor reduced =
      owner_mean(ctx, alltoall_bytes(ctx, to_owner), input.narrow(0, my_offset, my_count),
                 PayloadContext{context.bucket, context.step, 0, me, 0, my_offset});
  PayloadContext second{context.bucket, context.step, me, me, 1, my_offset};
  std::vector<std::uint8_t> owned = compressor_->encode(reduced, second);
  if (server_feedback_) {
    at::Tensor sent = at::empty_like(reduced);
    compressor_->decode(owned.data(), owned.size(), sent, second);
    server_error_[context.bucket] = reduced - sent;
  }
  const std::vector<std::vector<std::uint8_t>> all = allgather_bytes(ctx, owned);
  for (int c = 0; c < P; ++c) {
    auto [offset, count] = chunk(n, P, c);
    at::Tensor view = mean.narrow(0, offset, count);
    compressor_->decode(all[c].data(), all[c].size(), view,
                        PayloadContext{context.bucket, context.step, c, c, 1, offset});
  }
}

// The owner's chunk: the mean of every rank's decoded payload, plus the server residual.
at::Tensor TwoPhaseExchange::owner_mean(OpContext& ctx,
                                        const std::vector<std::vector<std::uint8_t>>& received,
                                        const at::Tensor& like, PayloadContext context) {
  at::Tensor sum = at::zeros({like.numel()}, like.options());
  for (int r = 0; r < ctx.size(); ++r) {
    context.source_rank = r;
    compressor_->decode_add(received[r].data(), received[r].size(), sum, context);
  }
  sum.div_(ctx.size());
  if (!server_feedback_) return sum;
  at::Tensor& error = server_error_[context.bucket];
  if (!error.defined()) error = at::zeros_like(sum);
  BRAID_CHECK(error.numel() == sum.numel() && error.scalar_type() == sum.scalar_type(),
              "two-phase exchange: bucket ", context.bucket, " changed shape, dtype or rank count");
  return sum + error;
}

BucketExchange::NamedTensors TwoPhaseExchange::state() const {
  NamedTensors out;
  for (const auto& [bucket, error] : server_error_) {
    out.emplace_back(str_cat(bucket, ".server_error"), error);
  }
  return out;
}

void TwoPhaseExchange::load_state(const NamedTensors& state) {
  std::map<int, at::Tensor> loaded;
  for (const auto& [name, tensor] : state) {
    char* end = nullptr;
    const long bucket = std::strtol(name.c_str(), &end, 10);
    if (end == name.c_str() || bucket < 0 || std::string(end) != ".server_error") {
      throw CheckpointError(str_cat("two-phase exchange state: unknown entry '", name, "'"));
    }
    loaded[static_cast<int>(bucket)] = tensor.clone().contiguous();
  }
  server_error_ = std::move(loaded);
}

}  // namespace braid
