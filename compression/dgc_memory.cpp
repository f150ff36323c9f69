#include "compression/dgc_memory.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>

#include "common/error.h"
#include "compression/compressor_dgc.h"

namespace braid {

DgcMemory::DgcMemory(const DgcOptions& options, double ratio, int ranks, double clip_norm)
    : options_(options),
      ratio_(ratio),
      local_clip_(clip_norm > 0 ? clip_norm / std::sqrt(ranks) : 0) {
  BRAID_CHECK(ranks >= 1, "ranks ", ranks);
  if (!(options.momentum >= 0 && options.momentum < 1)) {
    throw ConfigError(
        str_cat("optimizer.momentum: dgc needs it in [0, 1), got ", options.momentum));
  }
}

DgcMemory::BucketState& DgcMemory::bucket_state(int bucket, const at::Tensor& like) {
  BucketState& state = buckets_[bucket];
  if (!state.momentum.defined()) {
    state.momentum = at::zeros_like(like);
    state.velocity = at::zeros_like(like);
  }
  BRAID_CHECK(
      state.momentum.numel() == like.numel() && state.momentum.scalar_type() == like.scalar_type(),
      "dgc: bucket ", bucket, " changed shape or dtype");
  return state;
}

// As torch::nn::utils::clip_grad_norm_: scale by c / (norm + 1e-6) when that is below 1.
at::Tensor DgcMemory::clipped(const at::Tensor& gradient) const {
  if (local_clip_ <= 0) return gradient;
  const double norm = gradient.norm().item<double>();
  const double coefficient = local_clip_ / (norm + 1e-6);
  return coefficient < 1 ? gradient * coefficient : gradient;
}

at::Tensor DgcMemory::prepare(int bucket, const at::Tensor& gradient) {
  BucketState& state = bucket_state(bucket, gradient);
  const at::Tensor g = clipped(gradient);
  const double m = options_.momentum;
  if (options_.nesterov) {
    state.momentum.add_(g).mul_(m);
    state.velocity.add_(state.momentum).add_(g);
  } else {
    state.momentum.mul_(m).add_(g);
    state.velocity.add_(state.momentum);
  }
  return state.velocity;
}

void DgcMemory::commit(int bucket, const at::Tensor& gradient, const at::Tensor& input,
                       const at::Tensor& delta) {
  BucketState& state = bucket_state(bucket, gradient);
  const at::Tensor sent = delta.ne(0);
  state.velocity.masked_fill_(sent, 0);
  if (options_.momentum_masking) mask_momentum(bucket, state, sent);
}

void DgcMemory::set_layout(int bucket, const BucketLayout& layout) {
  std::vector<Range> ranges;
  for (const TensorSegment& tensor : layout) {
    if (!dgc_sends_dense(tensor, ratio_)) ranges.push_back({tensor.offset, tensor.numel()});
  }
  masked_ranges_[bucket] = std::move(ranges);
}

void DgcMemory::mask_momentum(int bucket, BucketState& state, const at::Tensor& sent) {
  const auto ranges = masked_ranges_.find(bucket);
  if (ranges == masked_ranges_.end()) {
    state.momentum.masked_fill_(sent, 0);
    return;
  }
  for (const Range& r : ranges->second) {
    state.momentum.narrow(0, r.offset, r.numel).masked_fill_(sent.narrow(0, r.offset, r.numel), 0);
  }
}

BucketMemory::NamedTensors DgcMemory::state() const {
  NamedTensors out;
  for (const auto& [bucket, state] : buckets_) {
    out.emplace_back(str_cat(bucket, ".momentum"), state.momentum);
    out.emplace_back(str_cat(bucket, ".velocity"), state.velocity);
  }
  return out;
}

void DgcMemory::load_state(const NamedTensors& state) {
  std::map<int, BucketState> loaded;
  for (const auto& [name, tensor] : state) {
    char* end = nullptr;
    const long bucket = std::strtol(name.c_str(), &end, 10);
    std::string field = end && *end == '.' ? std::string(end + 1) : std::string();
    if (end == name.c_str() || bucket < 0) field.clear();
    BucketState& target = loaded[static_cast<int>(bucket)];
    at::Tensor copy = tensor.clone().contiguous();
    if (field == "momentum") {
      target.momentum = copy;
    } else if (field == "velocity") {
      target.velocity = copy;
    } else {
      throw CheckpointError(str_cat("dgc state: unknown entry '", name, "'"));
    }
  }
  for (const auto& [bucket, target] : loaded) {
    if (!target.momentum.defined() || !target.velocity.defined()) {
      throw CheckpointError(str_cat("dgc state: bucket ", bucket, " is incomplete"));
    }
  }
  buckets_ = std::move(loaded);
}

}  // namespace braid
