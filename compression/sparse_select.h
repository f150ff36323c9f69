// Sparse selection and the sparse payload codec shared by topk and DGC.
//
// select_top_k() returns the indices of the k entries of largest magnitude. Small buckets use an
// exact selection; large ones first estimate a threshold from a strided sample (DGC's rule) so
// that the exact step only sorts out the few entries above it. Either way the result is the
// exact top-k set, ties at the k-th magnitude going to the lowest indices, so it depends only on
// the values and k; the seeded sample changes the cost, never the answer. NaN counts as +inf
// (a NaN gradient is sent, as a dense allreduce would propagate it).
//
// Sparse payload body, after the common header (payload.h) whose count is n:
//   k (LEB128 varint) | k skips (LEB128 varints) | k values in the header's dtype
// where skip_i = index_i - index_{i-1} - 1 with index_{-1} = -1: the number of entries passed
// over before each kept one. Indices are therefore strictly increasing by construction; at
// density 1% a skip mostly fits one byte, at 0.1% two, so a float32 pair costs ~5-6 bytes instead
// of 8 (uint32 index) or 12 (int64). Decoding checks k <= n, every varint's termination,
// 64-bit overflow and minimal length, that every index is < n, and that the skips end exactly
// where the values begin; any failure is a CommError naming the source rank and bucket.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "compression/payload.h"
#include "compression/seeded_rng.h"

namespace braid {

struct TopKSampling {
  // Buckets up to this many elements take the exact path: below ~64K elements one at::topk over
  // the bucket costs about what the sampled path's own full pass (|v| >= thr) plus its sample
  // sort cost, so sampling would save nothing and only add a code path.
  std::int64_t exact_max_elements = std::int64_t{1} << 16;
  // Fraction of entries sampled (DGC: 1%), raised to at least 2n/k samples so the sample holds
  // ~2 entries above the threshold; a sample as large as the bucket takes the exact path.
  double sample_fraction = 0.01;
};

struct TopKSelection {
  at::Tensor indices;         // k int64 indices, strictly increasing
  std::int64_t selected = 0;  // entries at or above the final threshold (n on the exact path)
  int lowerings = 0;          // times the sampled threshold was lowered by 0.8 (at most 10)
  bool sampled = false;       // false: exact path (small bucket, or fallback after 10 lowerings)
};

// Top-k of |values| (flat, contiguous float32/float64 CPU tensor), 0 <= k <= numel. Rule:
//  1. exact path if numel <= exact_max_elements or the sample would cover the bucket;
//  2. sample m = max(ceil(fraction * n), ceil(2n / k)) entries with stride floor(n / m) from a
//     start in [0, stride) drawn from `rng`; thr = the ceil(k * m / n)-th largest sampled
//     magnitude;
//  3. select |v| >= thr; while fewer than k are selected, thr *= 0.8 (at most 10 times; DGC
//     accepts 0.8k, but the count here must be exactly k and one more pass is far cheaper than
//     the exact fallback);
//  4. still fewer than k: exact path over the whole bucket (count exactly k, as tests and byte
//     accounting assume; error feedback would be correct either way);
//  5. exact top-k among the selected (DGC does it above 1.3k and truncates below; doing it always
//     costs O(selected) and makes the answer the exact top-k), ties to the lowest indices.
TopKSelection select_top_k(const at::Tensor& values, std::int64_t k, SeededRng& rng,
                           const TopKSampling& sampling = {});

// LEB128: 7 bits per byte, low bits first, high bit set on every byte but the last.
std::size_t varint_size(std::uint64_t value);
std::uint8_t* put_varint(std::uint8_t* out, std::uint64_t value);

// The skips of k strictly increasing indices (see above): their size, and writing them.
std::size_t index_skips_size(const std::int64_t* indices, std::int64_t k);
std::uint8_t* put_index_skips(std::uint8_t* out, const std::int64_t* indices, std::int64_t k);
// Parses exactly `size` bytes as k skips into indices in [0, n); CommError (via `context`) on a
// truncated, overlong or overflowing varint, an index >= n, or bytes left after the k-th skip.
std::vector<std::int64_t> read_index_skips(const std::uint8_t* data, std::size_t size,
                                           std::int64_t k, std::int64_t n,
                                           const PayloadContext& context);

// A sparse payload of kind `kind` for a bucket of n elements: `indices` (int64, strictly
// increasing, < n) and `values` (same length, float32 or float64, the payload's dtype).
std::vector<std::uint8_t> encode_sparse(PayloadKind kind, std::int64_t n, const at::Tensor& indices,
                                        const at::Tensor& values);

struct SparsePayload {
  std::vector<std::int64_t> indices;  // validated: strictly increasing, in [0, n)
  const std::uint8_t* values;         // indices.size() packed values of the dtype, in the payload
};
// Validates the whole payload (header, k, skips, values, length) before returning.
SparsePayload decode_sparse(const std::uint8_t* data, std::size_t size, PayloadKind kind,
                            DType dtype, std::int64_t n, const PayloadContext& context);

}  // namespace braid
