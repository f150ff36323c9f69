#include "compression/bucket_memory.h"

#include "common/error.h"
#include "compression/dgc_memory.h"
#include "compression/error_feedback.h"
#include "compression/momentum_correction.h"

namespace braid {

std::unique_ptr<BucketMemory> make_bucket_memory(const CompressionOptions& options,
                                                 const std::string& error_feedback, double eta,
                                                 int ranks, double clip_norm) {
  const ErrorFeedbackKind kind = parse_error_feedback(error_feedback);
  if (options.name != "dgc") {
    auto feedback =
        std::make_unique<ErrorFeedback>(kind, eta, parse_estimate_init(options.estimate_init));
    if (!options.momentum_correction) return feedback;
    return std::make_unique<MomentumCorrection>(options.dgc.momentum, std::move(feedback));
  }
  if (kind != ErrorFeedbackKind::kNone) {
    throw ConfigError(
        str_cat("compression.error_feedback: dgc keeps its own memory (the "
                "accumulated velocity is its error feedback); set it to none, got '",
                error_feedback, "'"));
  }
  return std::make_unique<DgcMemory>(options.dgc, options.ratio, ranks, clip_norm);
}

}  // namespace braid
