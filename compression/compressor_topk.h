// CompressorTopK: keeps the k = kept_elements(ratio, n) entries of largest magnitude, ties at the
// k-th magnitude to the lowest indices, and sends them as a sparse payload (sparse_select.h:
// varint index skips, then the values in the tensor's dtype). Large buckets find the k entries
// through DGC's sampled threshold (select_top_k), seeded by (seed, bucket, step, encoding rank);
// the kept set is the exact top-k either way, only the cost changes. Contractive with
// delta >= k/n, so it belongs under error feedback.
//
// Decoding (decode_sparse) validates k <= n, every varint, every index < n and the payload's
// length before touching the output.
#pragma once

#include <cstdint>

#include "compression/seeded_rng.h"
#include "compression/sparse_compressor.h"

namespace braid {

class CompressorTopK : public SparseCompressor {
 public:
  CompressorTopK(double ratio, std::uint64_t seed) : ratio_(ratio), seed_(seed) {}
  const char* name() const override { return "topk"; }
  std::vector<std::uint8_t> encode(const at::Tensor& input, const PayloadContext& context) override;
  void decode_add(const std::uint8_t* data, std::size_t size, at::Tensor& accumulator,
                  const PayloadContext& context) const override;

 protected:
  // The keep-ratio of `step`'s payloads (DGC's warm-up changes it with the step).
  virtual double kept_ratio(std::int64_t step) const { return ratio_; }
  // The generator of the threshold sample for one payload: seeded by (seed, bucket, step,
  // encoding rank).
  SeededRng rng_of(const PayloadContext& context) const;

 private:
  double ratio_;
  std::uint64_t seed_;
};

}  // namespace braid
