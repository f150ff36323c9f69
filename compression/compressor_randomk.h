// CompressorRandomK: keeps k = kept_elements(ratio, n) entries chosen uniformly at random,
// unscaled (contractive with delta = k/n in expectation; the d/k-rescaled
// variant is unbiased but not contractive, so it is not offered). The indices come from
// SeededRng(seed, bucket, step, part) only, with no rank or stage in it: every rank picks the same
// indices, so only the values travel and the receiver regenerates the indices (sorted, Floyd's
// sampling), and a two-phase exchange's owner re-selects exactly the indices its chunk's sum
// holds, so its second compression loses nothing.
// The decoder must therefore be given the encoder's bucket and step in its PayloadContext.
//
// Payload body: k (int64, must equal the decoder's own k for n) | k values in the tensor's dtype.
#pragma once

#include "compression/sparse_compressor.h"

namespace braid {

class CompressorRandomK : public SparseCompressor {
 public:
  CompressorRandomK(double ratio, std::uint64_t seed) : ratio_(ratio), seed_(seed) {}
  const char* name() const override { return "randomk"; }
  std::vector<std::uint8_t> encode(const at::Tensor& input, const PayloadContext& context) override;
  void decode_add(const std::uint8_t* data, std::size_t size, at::Tensor& accumulator,
                  const PayloadContext& context) const override;
  // The sorted indices every rank keeps for a bucket of n elements at (bucket, step).
  std::vector<std::int64_t> indices(std::int64_t n, const PayloadContext& context) const;

 private:
  double ratio_;
  std::uint64_t seed_;
};

}  // namespace braid
