#include "compression/compressor_dgc.h"

#include <ATen/ATen.h>

#include <cmath>

#include "common/error.h"
#include "compression/payload.h"
#include "compression/sparse_select.h"

namespace braid {
namespace {

void check_warmup(const DgcOptions& dgc) {
  if (dgc.warmup_epochs < 0) {
    throw ConfigError(str_cat("compression.warmup_epochs: must be >= 0, got ", dgc.warmup_epochs));
  }
  if (dgc.warmup_epochs > 0 && dgc.steps_per_epoch < 1) {
    throw ConfigError(str_cat("compression.warmup_epochs: ", dgc.warmup_epochs,
                              " warm-up epochs need the steps per epoch, got ",
                              dgc.steps_per_epoch));
  }
}

}  // namespace

double dgc_kept_ratio(double ratio, const DgcOptions& dgc, std::int64_t step) {
  check_warmup(dgc);
  if (dgc.warmup_epochs == 0) return ratio;
  const std::int64_t epoch = step / dgc.steps_per_epoch;
  if (epoch >= dgc.warmup_epochs) return ratio;
  return std::pow(ratio,
                  static_cast<double>(epoch + 1) / static_cast<double>(dgc.warmup_epochs + 1));
}

bool dgc_sends_dense(const TensorSegment& segment, double ratio) {
  return segment.shape.size() <= 1 || static_cast<double>(segment.numel()) * ratio < 1;
}

CompressorDgc::CompressorDgc(double ratio, const DgcOptions& dgc, std::uint64_t seed)
    : CompressorTopK(ratio, seed), target_ratio_(ratio), dgc_(dgc) {
  check_warmup(dgc_);
}

double CompressorDgc::kept_ratio(std::int64_t step) const {
  return dgc_kept_ratio(target_ratio_, dgc_, step);
}

void CompressorDgc::set_layout(int bucket, const BucketLayout& layout) {
  check_bucket_layout(layout, "dgc", bucket);
  std::vector<Segment> segments;
  for (const TensorSegment& tensor : layout) {
    segments.push_back({tensor.offset, tensor.numel(), dgc_sends_dense(tensor, target_ratio_)});
  }
  layouts_[bucket] = std::move(segments);
}

std::vector<std::uint8_t> CompressorDgc::encode(const at::Tensor& input,
                                                const PayloadContext& context) {
  const auto layout = layouts_.find(context.bucket);
  if (layout == layouts_.end()) return CompressorTopK::encode(input, context);
  device_value_dtype(input);
  const std::int64_t n = input.numel();
  const at::Tensor flat = input.view({n});
  SeededRng rng = rng_of(context);
  const double ratio = kept_ratio(context.step);
  std::vector<at::Tensor> kept;
  for (const Segment& segment : layout->second) {
    BRAID_CHECK(segment.offset + segment.numel <= n, "dgc: bucket ", context.bucket, " of ", n,
                " elements is smaller than its layout");
    if (segment.dense) {
      kept.push_back(at::arange(segment.offset, segment.offset + segment.numel, at::kLong));
      continue;
    }
    const at::Tensor values = flat.narrow(0, segment.offset, segment.numel);
    kept.push_back(select_top_k(values, kept_elements(ratio, segment.numel), rng).indices +
                   segment.offset);
  }
  const at::Tensor indices = kept.empty() ? at::empty({0}, at::kLong) : at::cat(kept);
  return encode_sparse(PayloadKind::kTopK, n, indices, flat.index_select(0, indices));
}

}  // namespace braid
