// CompressorSign: scaled sign per chunk of kChunk elements, C(x)_i = (||x_c||_1 / |c|) sign(x_i)
// for the chunk c holding i: per chunk, the scale that minimises
// ||x_c - a sign(x_c)||^2, which makes it contractive (the l2/sqrt(n) scale of 1-bit Adam is
// not). One scale per chunk, not per bucket: a bucket holds many layers, and one mean magnitude
// for all of them gives layers with small gradients steps far too large (EF-signSGD scales per
// layer; chunks approximate that without knowing the layout). Zero counts as positive. Biased:
// use it under error feedback. 1 + 32 / kChunk bits per element.
//
// Runs on CUDA tensors too: encode packs on the device, decode unpacks on the host and copies.
//
// Payload body: ceil(n / kChunk) scales (float32, finite and >= 0) | n sign bits packed
// (1 = negative).
#pragma once

#include "compression/compressor.h"

namespace braid {

class CompressorSign : public Compressor {
 public:
  static constexpr std::int64_t kChunk = 512;
  const char* name() const override { return "sign"; }
  std::vector<std::uint8_t> encode(const at::Tensor& input, const PayloadContext& context) override;
  void decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
              const PayloadContext& context) const override;
  // The payload built with ATen ops on the input's device: the path CUDA tensors take. It
  // takes CPU tensors too, so tests hold it to the host loop without a GPU.
  static std::vector<std::uint8_t> encode_with_aten(const at::Tensor& input);
};

}  // namespace braid
