#include "compression/compressor_dgc.h"

#include <cmath>

#include "common/error.h"

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

CompressorDgc::CompressorDgc(double ratio, const DgcOptions& dgc, std::uint64_t seed)
    : CompressorTopK(ratio, seed), target_ratio_(ratio), dgc_(dgc) {
  check_warmup(dgc_);
}

double CompressorDgc::kept_ratio(std::int64_t step) const {
  return dgc_kept_ratio(target_ratio_, dgc_, step);
}

}  // namespace braid
