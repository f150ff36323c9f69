// CompressorTopK: keeps the k = kept_elements(ratio, n) entries of largest magnitude (exact
// selection with at::topk; ties at the threshold go whichever way at::topk breaks them) and
// sends them as (index, value) pairs. Contractive with delta >= k/n (ALGORITHMS.md 7.1), so it
// belongs under error feedback.
//
// Payload body: k (int64) | k indices, strictly increasing, uint32 when n < 2^32 else uint64 |
// k values in the tensor's dtype. Decoding rejects k > n, an index >= n and indices that are not
// strictly increasing (a duplicate would count one entry twice), before touching the output.
#pragma once

#include "compression/sparse_compressor.h"

namespace braid {

class CompressorTopK : public SparseCompressor {
 public:
  explicit CompressorTopK(double ratio) : ratio_(ratio) {}
  const char* name() const override { return "topk"; }
  std::vector<std::uint8_t> encode(const at::Tensor& input, const PayloadContext& context) override;
  void decode_add(const std::uint8_t* data, std::size_t size, at::Tensor& accumulator,
                  const PayloadContext& context) const override;

 private:
  double ratio_;
};

}  // namespace braid
