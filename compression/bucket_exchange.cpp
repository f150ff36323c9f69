#include "compression/bucket_exchange.h"

#include <ATen/ATen.h>

#include "collectives/allreduce.h"
#include "collectives/collectives.h"
#include "common/error.h"
#include "compression/powersgd_exchange.h"
#include "compression/two_phase_exchange.h"

namespace braid {
namespace {

// Summable payloads (fp16, bf16): one ring allreduce of the wire values, decoded once. Each rank
// sends its input scaled by 1/P, as PyTorch's fp16 compress hook does: the partial sums on the wire
// are then bounded by the mean's magnitude rather than P times it, so fp16 overflows only where the
// mean itself exceeds 65504 (unscaled, any mean above 65504/P did). The price is P times less room
// at the small end (values below 6e-5 P lose bits to fp16's subnormals); bf16 has float32's range
// either way. `delta` is what the scaled payload stands for times P, so error feedback sees this
// rank's contribution in the input's units (multiplying a 16-bit value by P < 2^13 is exact).
class AllreduceExchange : public BucketExchange {
 public:
  explicit AllreduceExchange(std::unique_ptr<Compressor> compressor)
      : compressor_(std::move(compressor)), ring_(make_allreduce("ring")) {}
  const char* path() const override { return "allreduce"; }

  void run(OpContext& ctx, const at::Tensor& input, const PayloadContext& context, at::Tensor& mean,
           at::Tensor* delta) override {
    PayloadContext own = context;
    own.source_rank = ctx.rank();
    const int P = ctx.size();
    std::vector<std::uint8_t> payload =
        compressor_->encode(P == 1 ? input : input.div(static_cast<double>(P)), own);
    if (delta) {
      compressor_->decode(payload.data(), payload.size(), *delta, own);
      if (P > 1) delta->mul_(static_cast<double>(P));
    }
    const DType wire = compressor_->wire_dtype();
    BRAID_CHECK(payload.size() % dtype_size(wire) == 0, compressor_->name(),
                ": a summable payload of ", payload.size(), " bytes");
    ring_->run(
        ctx,
        Buffer{payload.data(), static_cast<std::int64_t>(payload.size() / dtype_size(wire)), wire},
        ReduceOp::kSum);
    compressor_->decode(payload.data(), payload.size(), mean, own);  // already the mean
  }

 private:
  std::unique_ptr<Compressor> compressor_;
  std::unique_ptr<Allreduce> ring_;
};

// Everything else: allgather of every rank's payload, decoded and summed in rank order.
class GatherExchange : public BucketExchange {
 public:
  explicit GatherExchange(std::unique_ptr<Compressor> compressor)
      : compressor_(std::move(compressor)) {}
  const char* path() const override { return "gather"; }

  void run(OpContext& ctx, const at::Tensor& input, const PayloadContext& context, at::Tensor& mean,
           at::Tensor* delta) override {
    PayloadContext own = context;
    own.source_rank = ctx.rank();
    std::vector<std::uint8_t> payload = compressor_->encode(input, own);
    if (delta) compressor_->decode(payload.data(), payload.size(), *delta, own);
    const std::vector<std::vector<std::uint8_t>> all = allgather_bytes(ctx, payload);
    mean.zero_();
    for (int r = 0; r < ctx.size(); ++r) {
      PayloadContext from = context;
      from.source_rank = r;
      compressor_->decode_add(all[r].data(), all[r].size(), mean, from);
    }
    mean.div_(ctx.size());
  }

  void set_layout(int bucket, BucketLayout layout) override {
    compressor_->set_layout(bucket, layout);
  }

 private:
  std::unique_ptr<Compressor> compressor_;
};

}  // namespace

double estimated_bits_per_element(const CompressionOptions& options) {
  if (options.name == "qsgd") return options.bits + 1 + 32.0 / 512;  // codes and sign, norms
  if (options.name == "sign") return 1 + 32.0 / 512;  // bits, per-chunk scales (or fewer)
  if (options.name == "topk" || options.name == "dgc") return options.ratio * (32 + 16);
  if (options.name == "randomk") return options.ratio * 32;  // values only
  return 32;                                                 // none: float32 values
}

bool gather_costs_as_much_as_dense(const CompressionOptions& options, int ranks) {
  // Per element and rank: the gather sends (P-1) b bits, a ring allreduce 2(P-1)/P x 32.
  return ranks * estimated_bits_per_element(options) >= 64;
}

void BucketExchange::load_state(const NamedTensors& state) {
  if (!state.empty()) {
    throw CheckpointError(str_cat("the ", path(),
                                  " exchange keeps no state, but the checkpoint has '",
                                  state.front().first, "'"));
  }
}

const std::vector<std::string>& compression_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all = compressor_names();
    all.push_back("powersgd");
    return all;
  }();
  return names;
}

const std::vector<std::string>& exchange_path_names() {
  static const std::vector<std::string> names = {"auto", "gather", "two_phase"};
  return names;
}

std::unique_ptr<BucketExchange> make_bucket_exchange(const CompressionOptions& options,
                                                     ErrorFeedbackKind feedback, int ranks) {
  const std::string& path = options.exchange;
  if (path != "auto" && path != "gather" && path != "two_phase") {
    throw ConfigError(str_cat("compression.exchange: unknown path '", path,
                              "' (valid: ", join(exchange_path_names()), ")"));
  }
  if (options.name == "powersgd") return std::make_unique<PowerSgdExchange>(options);
  std::unique_ptr<Compressor> compressor = make_compressor(options);
  if (compressor->summable()) return std::make_unique<AllreduceExchange>(std::move(compressor));
  if (options.name == "dgc") {
    // DGC clears from its velocity exactly what it sent (dgc_memory.h), so every rank must receive
    // exactly that: a second compression on the way would lose what it drops.
    if (path == "two_phase") {
      throw ConfigError(
          "compression.exchange: dgc needs every rank's sparse payload as sent, but two_phase "
          "recompresses on the way; use gather (or auto)");
    }
    return std::make_unique<GatherExchange>(std::move(compressor));
  }
  const bool exact_mean =
      feedback == ErrorFeedbackKind::kEf21 || feedback == ErrorFeedbackKind::kEControl;
  if (path == "two_phase" && exact_mean) {
    throw ConfigError(
        "compression.exchange: two_phase recompresses on the way, but ef21 and econtrol need the "
        "exact mean of what every rank sent; use gather (or auto) with them");
  }
  const bool two_phase = path == "two_phase" || (path == "auto" && !exact_mean &&
                                                 gather_costs_as_much_as_dense(options, ranks));
  if (!two_phase) return std::make_unique<GatherExchange>(std::move(compressor));
  return std::make_unique<TwoPhaseExchange>(std::move(compressor),
                                            /*server_feedback=*/feedback == ErrorFeedbackKind::kEf);
}

}  // namespace braid
