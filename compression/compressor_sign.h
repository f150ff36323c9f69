// CompressorSign: scaled sign, C(x) = (||x||_1 / n) * sign(x) (ALGORITHMS.md 7.1): the scale
// that minimises ||x - a sign(x)||^2, which makes it contractive (the l2/sqrt(n) scale of 1-bit
// Adam is not). Zero counts as positive. Biased: use it under error feedback.
//
// Payload body: scale (float32, finite and >= 0) | n sign bits packed (1 = negative).
#pragma once

#include "compression/compressor.h"

namespace braid {

class CompressorSign : public Compressor {
 public:
  const char* name() const override { return "sign"; }
  std::vector<std::uint8_t> encode(const at::Tensor& input, const PayloadContext& context) override;
  void decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
              const PayloadContext& context) const override;
};

}  // namespace braid
