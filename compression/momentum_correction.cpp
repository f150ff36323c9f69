#include "compression/momentum_correction.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <string>

#include "common/error.h"

namespace braid {
namespace {
constexpr const char* kSuffix = ".momentum";
}  // namespace

MomentumCorrection::MomentumCorrection(double momentum, std::unique_ptr<BucketMemory> inner)
    : momentum_(momentum), inner_(std::move(inner)) {
  BRAID_CHECK(momentum >= 0 && momentum < 1, "momentum correction: momentum ", momentum);
}

at::Tensor MomentumCorrection::prepare(int bucket, const at::Tensor& gradient) {
  at::Tensor& u = velocity_[bucket];
  if (!u.defined()) u = at::zeros_like(gradient);
  BRAID_CHECK(u.numel() == gradient.numel() && u.scalar_type() == gradient.scalar_type(),
              "momentum correction: bucket ", bucket, " changed shape or dtype");
  u.mul_(momentum_).add_(gradient);
  return inner_->prepare(bucket, u);
}

void MomentumCorrection::commit(int bucket, const at::Tensor& gradient, const at::Tensor& input,
                                const at::Tensor& delta) {
  inner_->commit(bucket, velocity_.at(bucket), input, delta);
}

BucketMemory::NamedTensors MomentumCorrection::state() const {
  NamedTensors out = inner_->state();
  for (const auto& [bucket, u] : velocity_) out.emplace_back(str_cat(bucket, kSuffix), u);
  return out;
}

void MomentumCorrection::load_state(const NamedTensors& state) {
  NamedTensors inner;
  std::map<int, at::Tensor> loaded;
  const std::string suffix = kSuffix;
  for (const auto& [name, tensor] : state) {
    char* end = nullptr;
    const long bucket = std::strtol(name.c_str(), &end, 10);
    if (end != name.c_str() && bucket >= 0 && std::string(end) == suffix) {
      loaded[static_cast<int>(bucket)] = tensor.clone().contiguous();
    } else {
      inner.emplace_back(name, tensor);
    }
  }
  inner_->load_state(inner);
  velocity_ = std::move(loaded);
}

}  // namespace braid
