// CompressorNone: the identity. Its payload is the header and the tensor's own bytes (float32 or
// float64), gathered like any other payload and decoded exactly. It is not summable: its wire
// dtype would be the tensor's, which a Compressor does not know before it sees one, and a strategy
// that compresses nothing should take its dense allreduce path rather than come through here.
// It exists so that error feedback and the gather path can be tested against exact arithmetic.
#pragma once

#include "compression/compressor.h"

namespace braid {

class CompressorNone : public Compressor {
 public:
  const char* name() const override { return "none"; }
  std::vector<std::uint8_t> encode(const at::Tensor& input, const PayloadContext& context) override;
  void decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
              const PayloadContext& context) const override;
};

}  // namespace braid
