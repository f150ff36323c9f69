#include "compression/error_feedback.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>

#include "common/error.h"

namespace braid {
namespace {

at::Tensor decode_own(const Compressor& compressor, const std::vector<std::uint8_t>& payload,
                      const at::Tensor& like, const PayloadContext& context) {
  at::Tensor decoded = at::empty_like(like);
  compressor.decode(payload.data(), payload.size(), decoded, context);
  return decoded;
}

}  // namespace

const std::vector<std::string>& error_feedback_names() {
  static const std::vector<std::string> names = {"none", "ef", "ef21", "econtrol"};
  return names;
}

ErrorFeedbackKind parse_error_feedback(const std::string& name) {
  if (name == "none") return ErrorFeedbackKind::kNone;
  if (name == "ef") return ErrorFeedbackKind::kEf;
  if (name == "ef21") return ErrorFeedbackKind::kEf21;
  if (name == "econtrol") return ErrorFeedbackKind::kEControl;
  throw ConfigError(str_cat("compression.error_feedback: unknown kind '", name,
                            "' (valid: ", join(error_feedback_names()), ")"));
}

const std::vector<std::string>& estimate_init_names() {
  static const std::vector<std::string> names = {"gradient", "compressed"};
  return names;
}

EstimateInit parse_estimate_init(const std::string& name) {
  if (name == "gradient") return EstimateInit::kGradient;
  if (name == "compressed") return EstimateInit::kCompressed;
  throw ConfigError(str_cat("compression.estimate_init: unknown start '", name,
                            "' (valid: ", join(estimate_init_names()), ")"));
}

ErrorFeedback::ErrorFeedback(ErrorFeedbackKind kind, double eta, EstimateInit init)
    : kind_(kind), eta_(eta), init_(init) {
  if (!(std::isfinite(eta) && eta >= 0)) {
    throw ConfigError(str_cat("compression.eta: ", eta, " must be finite and >= 0"));
  }
}

ErrorFeedback::BucketState& ErrorFeedback::bucket_state(int bucket, const at::Tensor& like) {
  BucketState& state = buckets_[bucket];
  if (!state.error.defined()) {
    state.error = at::zeros_like(like);
    state.estimate = at::zeros_like(like);
    state.mean_estimate = at::zeros_like(like);
  }
  BRAID_CHECK(
      state.error.numel() == like.numel() && state.error.scalar_type() == like.scalar_type(),
      "error feedback: bucket ", bucket, " changed shape or dtype");
  return state;
}

bool ErrorFeedback::starts_dense(int bucket) const {
  return init_ == EstimateInit::kGradient && needs_exact_mean() && buckets_.count(bucket) == 0;
}

at::Tensor ErrorFeedback::prepare(int bucket, const at::Tensor& gradient) {
  if (kind_ == ErrorFeedbackKind::kNone) return gradient;
  BucketState& state = bucket_state(bucket, gradient);
  if (kind_ == ErrorFeedbackKind::kEf) return gradient + state.error;
  // EF21 is EControl without its error term.
  at::Tensor target = gradient - state.estimate;
  return kind_ == ErrorFeedbackKind::kEControl ? target + eta_ * state.error : target;
}

void ErrorFeedback::commit(int bucket, const at::Tensor& gradient, const at::Tensor& input,
                           const at::Tensor& delta) {
  if (kind_ == ErrorFeedbackKind::kNone) return;
  BucketState& state = bucket_state(bucket, gradient);
  if (kind_ == ErrorFeedbackKind::kEf) {
    state.error = input - delta;
    return;
  }
  if (kind_ == ErrorFeedbackKind::kEControl) state.error += gradient - state.estimate - delta;
  state.estimate += delta;
}

std::vector<std::uint8_t> ErrorFeedback::encode(int bucket, const at::Tensor& gradient,
                                                Compressor& compressor, PayloadContext context) {
  context.bucket = bucket;
  at::Tensor input = prepare(bucket, gradient);
  std::vector<std::uint8_t> payload = compressor.encode(input, context);
  if (kind_ != ErrorFeedbackKind::kNone) {
    commit(bucket, gradient, input, decode_own(compressor, payload, input, context));
  }
  return payload;
}

void ErrorFeedback::finish(int bucket, at::Tensor& mean_of_decoded) {
  if (kind_ == ErrorFeedbackKind::kNone || kind_ == ErrorFeedbackKind::kEf) return;
  BucketState& state = bucket_state(bucket, mean_of_decoded);
  state.mean_estimate += mean_of_decoded;
  mean_of_decoded.copy_(state.mean_estimate);
}

ErrorFeedback::NamedTensors ErrorFeedback::state() const {
  NamedTensors out;
  for (const auto& [bucket, state] : buckets_) {
    out.emplace_back(str_cat(bucket, ".error"), state.error);
    out.emplace_back(str_cat(bucket, ".estimate"), state.estimate);
    out.emplace_back(str_cat(bucket, ".mean_estimate"), state.mean_estimate);
  }
  return out;
}

void ErrorFeedback::load_state(const NamedTensors& state) {
  std::map<int, BucketState> loaded;
  for (const auto& [name, tensor] : state) {
    char* end = nullptr;
    long bucket = std::strtol(name.c_str(), &end, 10);
    std::string field = end && *end == '.' ? std::string(end + 1) : std::string();
    if (end == name.c_str() || bucket < 0) field.clear();
    BucketState& target = loaded[static_cast<int>(bucket)];
    at::Tensor copy = tensor.clone().contiguous();
    if (field == "error") {
      target.error = copy;
    } else if (field == "estimate") {
      target.estimate = copy;
    } else if (field == "mean_estimate") {
      target.mean_estimate = copy;
    } else {
      throw CheckpointError(str_cat("error feedback state: unknown entry '", name, "'"));
    }
  }
  for (const auto& [bucket, target] : loaded) {
    if (!target.error.defined() || !target.estimate.defined() || !target.mean_estimate.defined()) {
      throw CheckpointError(str_cat("error feedback state: bucket ", bucket, " is incomplete"));
    }
  }
  buckets_ = std::move(loaded);
}

}  // namespace braid
