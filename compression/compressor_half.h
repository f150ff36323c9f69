// CompressorHalf: dense 16-bit floats, fp16 (IEEE half) or bf16 (bfloat16). The payload is the
// bare array of wire_dtype() values, with no header, because it is summable: the strategy
// allreduces it as a tensor of wire_dtype() elements and decode() converts the sum back to the
// bucket's dtype. The sum is taken in 16-bit precision on the wire (fp16 overflows past 65504;
// bf16 keeps float32's range with 8 bits of mantissa), so the allreduce exchange encodes the
// input divided by the rank count (bucket_exchange.cpp). A payload is validated by its length
// alone: any bit pattern is some 16-bit value.
#pragma once

#include "compression/compressor.h"

namespace braid {

class CompressorHalf : public Compressor {
 public:
  explicit CompressorHalf(DType wire);  // kFloat16 or kBFloat16
  const char* name() const override;
  bool summable() const override { return true; }
  DType wire_dtype() const override { return wire_; }
  std::vector<std::uint8_t> encode(const at::Tensor& input, const PayloadContext& context) override;
  void decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
              const PayloadContext& context) const override;

 private:
  DType wire_;
};

}  // namespace braid
