// CompressorSign: scaled sign, C(x)_i = (||x_r||_1 / |r|) sign(x_i) for the run r of elements
// holding i: per run, the scale that minimises ||x_r - a sign(x_r)||^2, which makes it
// contractive (the l2/sqrt(n) scale of 1-bit Adam is not). Zero counts as positive. Biased: use
// it under error feedback. Runs are either
//  - tensors (SignScale::kTensor, compression.scale: tensor): each tensor of the bucket's layout
//    (set_layout) is one run, and so is each gap between them, as EF-signSGD (Karimireddy et
//    al., 2019) scales each layer by its own ||.||_1 / size. A run that straddles two tensors
//    gives the one with the smaller gradients steps too large, which under error feedback
//    feeds on itself (bench/compression.sh: sign + EF diverges with chunks, trains with tensors);
//  - chunks of kChunk elements (SignScale::kChunk, compression.scale: chunk, and 1-bit Adam's
//    momentum, which has no layout): no layout needed, 32 / kChunk bits per element of scales.
// A bucket without a layout, and a two-phase chunk's part of it (PayloadContext::offset), fall
// back to whatever runs the layout gives over that range; without one, chunks.
//
// Runs on CUDA tensors too: encode sums and packs on the device, decode unpacks on the host and
// copies.
//
// Payload body: runs kind (uint8: 0 chunks of kChunk, 1 listed) | with 1: run count R (int64)
// and R run lengths (int64, >= 1, summing to the element count) | one scale per run (float32,
// finite and >= 0) | n sign bits packed (1 = negative).
#pragma once

#include <map>

#include "compression/compressor.h"

namespace braid {

enum class SignScale { kTensor, kChunk };

class CompressorSign : public Compressor {
 public:
  static constexpr std::int64_t kChunk = 512;
  explicit CompressorSign(SignScale scale = SignScale::kChunk) : scale_(scale) {}
  const char* name() const override { return "sign"; }
  std::vector<std::uint8_t> encode(const at::Tensor& input, const PayloadContext& context) override;
  void decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
              const PayloadContext& context) const override;
  void set_layout(int bucket, const BucketLayout& layout) override;

  // The lengths of the runs that share a scale, for `n` elements starting at `context.offset` of
  // `context.bucket`; empty for chunks of kChunk.
  std::vector<std::int64_t> runs_of(std::int64_t n, const PayloadContext& context) const;
  // The payload built with ATen ops on the input's device: the path CUDA tensors take. It
  // takes CPU tensors too, so tests hold it to the host loop without a GPU.
  static std::vector<std::uint8_t> encode_with_aten(const at::Tensor& input,
                                                    const std::vector<std::int64_t>& runs);

 private:
  SignScale scale_;
  std::map<int, BucketLayout> layouts_;
};

// compression.scale: tensor | chunk.
SignScale sign_scale_of(const std::string& name);
const std::vector<std::string>& sign_scale_names();

}  // namespace braid
