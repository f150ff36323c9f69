// CompressorQsgd: QSGD stochastic quantisation (Alistarh et al. 2017) with
// s = 2^bits - 1 levels and one float32 l2 norm per chunk of kChunk elements. Element x of a
// chunk with norm N becomes N * sign(x) * l / s, where l = floor(s|x|/N) rounded up with
// probability s|x|/N - floor(s|x|/N): unbiased, E[Q(x)] = x (N is rounded to float32 before the
// levels are drawn, so it is exactly the norm the decoder multiplies by), variance per element
// (N/s)^2 p(1-p) <= (N/s)^2 / 4.
//
// The rounding draws come from SeededRng(seed, bucket, step, source_rank): encode() must be
// given the encoding rank's own rank as context.source_rank, so that ranks draw independently
// (identical draws on every rank would correlate the errors that averaging should cancel).
//
// Payload body: bits (uint8) | ceil(n / kChunk) float32 norms | n codes of bits + 1 bits packed
// (level in the low bits, the sign above it). Decoding rejects a different bit width and a norm
// that is negative or not finite.
#pragma once

#include "compression/compressor.h"

namespace braid {

class CompressorQsgd : public Compressor {
 public:
  static constexpr std::int64_t kChunk = 512;
  CompressorQsgd(int bits, std::uint64_t seed);
  const char* name() const override { return "qsgd"; }
  std::vector<std::uint8_t> encode(const at::Tensor& input, const PayloadContext& context) override;
  void decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
              const PayloadContext& context) const override;

 private:
  int bits_;
  std::uint32_t levels_;  // s = 2^bits - 1
  std::uint64_t seed_;
};

}  // namespace braid
