#include "compression/sparse_select.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace braid {
namespace {

constexpr int kMaxLowerings = 10;
constexpr double kLowering = 0.8;

// |values| with NaN as +inf, so that NaN orders (it is kept first) and compares equal to itself.
at::Tensor magnitudes(const at::Tensor& values) {
  at::Tensor mags = values.abs();
  return mags.masked_fill_(at::isnan(mags), std::numeric_limits<double>::infinity());
}

// Positions (ascending) of the k largest of `mags`, ties at the k-th value to the lowest
// positions: at::topk only finds the k-th value, since its own tie order is unspecified.
at::Tensor keep_largest(const at::Tensor& mags, std::int64_t k) {
  if (k == mags.numel()) return at::arange(k, mags.options().dtype(at::kLong));
  if (k == 0) return at::empty({0}, mags.options().dtype(at::kLong));
  at::Tensor kth = std::get<0>(at::topk(mags, k, 0, true, false)).min();
  at::Tensor above = mags > kth, ties = mags == kth;
  const std::int64_t room = k - above.sum().item<std::int64_t>();
  return above.logical_or_(ties.logical_and_(ties.cumsum(0) <= room)).nonzero().view({-1});
}

// The threshold estimate of DGC: the ceil(k m / n)-th largest of m strided samples.
double sampled_threshold(const at::Tensor& mags, std::int64_t k, std::int64_t samples,
                         SeededRng& rng) {
  const std::int64_t n = mags.numel(), stride = n / samples;
  const auto start = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(stride)));
  at::Tensor sample = mags.slice(0, start, n, stride);
  const std::int64_t m = sample.numel();
  auto top = static_cast<std::int64_t>(std::ceil(static_cast<double>(k) * m / n));
  top = std::min(m, std::max<std::int64_t>(1, top));
  return std::get<0>(at::topk(sample, top, 0, true, false)).min().item<double>();
}

// One LEB128 varint from data[pos, size); `what` and `item` name it in the error.
std::uint64_t read_varint(const std::uint8_t* data, std::size_t size, std::size_t& pos,
                          const PayloadContext& context, const char* what, std::int64_t item) {
  std::uint64_t value = 0;
  for (int shift = 0;; shift += 7) {
    if (pos == size) throw_payload_error(context, str_cat("truncated varint: ", what, " ", item));
    const std::uint8_t byte = data[pos++];
    const std::uint64_t bits = byte & 0x7f;
    if (shift > 63 || (shift == 63 && bits > 1)) {
      throw_payload_error(context, str_cat("varint overflows 64 bits: ", what, " ", item));
    }
    value |= bits << shift;
    if ((byte & 0x80) == 0) {
      // A zero last byte after the first adds nothing: only the minimal encoding is accepted, so
      // that a payload's bytes are a function of its content.
      if (byte == 0 && shift > 0) {
        throw_payload_error(context, str_cat("overlong varint: ", what, " ", item));
      }
      return value;
    }
  }
}

}  // namespace

TopKSelection select_top_k(const at::Tensor& values, std::int64_t k, SeededRng& rng,
                           const TopKSampling& sampling) {
  device_value_dtype(values);
  const std::int64_t n = values.numel();
  BRAID_CHECK(values.dim() == 1 && k >= 0 && k <= n, "select_top_k: k = ", k, " of ", n);
  at::Tensor mags = magnitudes(values);
  TopKSelection result;
  const double wanted = std::max(std::ceil(sampling.sample_fraction * static_cast<double>(n)),
                                 std::ceil(2.0 * static_cast<double>(n) / std::max<double>(1, k)));
  if (k > 0 && k < n && n > sampling.exact_max_elements && wanted < static_cast<double>(n)) {
    result.sampled = true;
    double thr = sampled_threshold(mags, k, static_cast<std::int64_t>(wanted), rng);
    for (; std::isfinite(thr); thr *= kLowering, ++result.lowerings) {
      at::Tensor candidates = (mags >= thr).nonzero().view({-1});
      result.selected = candidates.numel();
      if (result.selected >= k) {
        at::Tensor keep = keep_largest(mags.index_select(0, candidates), k);
        result.indices = candidates.index_select(0, keep);
        return result;
      }
      if (result.lowerings == kMaxLowerings) break;
    }
  }
  result.sampled = false;
  result.selected = n;
  result.indices = keep_largest(mags, k);
  return result;
}

std::size_t varint_size(std::uint64_t value) {
  std::size_t size = 1;
  for (; value >= 0x80; value >>= 7) ++size;
  return size;
}

std::uint8_t* put_varint(std::uint8_t* out, std::uint64_t value) {
  for (; value >= 0x80; value >>= 7) *out++ = static_cast<std::uint8_t>(value | 0x80);
  *out++ = static_cast<std::uint8_t>(value);
  return out;
}

std::size_t index_skips_size(const std::int64_t* indices, std::int64_t k) {
  std::size_t size = 0;
  std::int64_t previous = -1;
  for (std::int64_t i = 0; i < k; ++i) {
    BRAID_CHECK(indices[i] > previous, "sparse indices must be strictly increasing: ", previous,
                " then ", indices[i]);
    size += varint_size(static_cast<std::uint64_t>(indices[i] - previous - 1));
    previous = indices[i];
  }
  return size;
}

std::uint8_t* put_index_skips(std::uint8_t* out, const std::int64_t* indices, std::int64_t k) {
  std::int64_t previous = -1;
  for (std::int64_t i = 0; i < k; ++i) {
    out = put_varint(out, static_cast<std::uint64_t>(indices[i] - previous - 1));
    previous = indices[i];
  }
  return out;
}

std::vector<std::int64_t> read_index_skips(const std::uint8_t* data, std::size_t size,
                                           std::int64_t k, std::int64_t n,
                                           const PayloadContext& context) {
  // Every skip takes at least one byte: this bounds k before anything is allocated.
  if (k < 0 || static_cast<std::uint64_t>(k) > size) {
    throw_payload_error(context, str_cat("truncated: ", k, " index skips in ", size, " bytes"));
  }
  std::vector<std::int64_t> indices(static_cast<std::size_t>(k));
  std::size_t pos = 0;
  std::uint64_t next = 0;  // the smallest index the next skip can reach; always <= n
  for (std::int64_t i = 0; i < k; ++i) {
    const std::uint64_t skip = read_varint(data, size, pos, context, "skip of index", i);
    if (skip >= static_cast<std::uint64_t>(n) - next) {
      throw_payload_error(context, str_cat("index ", i, ": skip ", skip, " after position ", next,
                                           " leaves [0, ", n, ")"));
    }
    indices[i] = static_cast<std::int64_t>(next + skip);
    next += skip + 1;
  }
  if (pos != size) {
    throw_payload_error(context, str_cat(size - pos, " bytes after the last index skip"));
  }
  return indices;
}

std::vector<std::uint8_t> encode_sparse(PayloadKind kind, std::int64_t n, const at::Tensor& indices,
                                        const at::Tensor& values) {
  const DType dtype = payload_value_dtype(values);
  BRAID_CHECK(indices.scalar_type() == at::kLong && indices.is_contiguous() && indices.dim() == 1,
              "sparse indices must be a contiguous int64 vector");
  const std::int64_t k = indices.numel();
  BRAID_CHECK(values.numel() == k && k <= n, "sparse payload: ", k, " indices, ", values.numel(),
              " values, n = ", n);
  const std::int64_t* index = indices.data_ptr<std::int64_t>();
  BRAID_CHECK(k == 0 || index[k - 1] < n, "sparse index ", k ? index[k - 1] : 0, " >= n = ", n);
  const std::size_t count_bytes = varint_size(static_cast<std::uint64_t>(k));
  const std::size_t skip_bytes = index_skips_size(index, k);
  const std::size_t value_bytes = static_cast<std::size_t>(k) * dtype_size(dtype);
  PayloadWriter writer(kind, dtype, n, count_bytes + skip_bytes + value_bytes);
  put_varint(writer.reserve(count_bytes), static_cast<std::uint64_t>(k));
  put_index_skips(writer.reserve(skip_bytes), index, k);
  writer.put_bytes(values.data_ptr(), value_bytes);
  return writer.finish();
}

SparsePayload decode_sparse(const std::uint8_t* data, std::size_t size, PayloadKind kind,
                            DType dtype, std::int64_t n, const PayloadContext& context) {
  PayloadReader reader(data, size, kind, dtype, n, context);
  const std::size_t body_size = reader.remaining();
  const std::uint8_t* body = reader.take(body_size, "body");
  std::size_t pos = 0;
  const std::uint64_t k = read_varint(body, body_size, pos, context, "count", 0);
  if (k > static_cast<std::uint64_t>(n)) reader.fail(str_cat("k = ", k, " outside [0, ", n, "]"));
  const std::size_t value_size = dtype_size(dtype);
  if (k > (body_size - pos) / value_size) {
    reader.fail(str_cat("truncated: ", k, " values of ", value_size, " bytes need more than the ",
                        body_size - pos, " bytes left"));
  }
  const std::size_t skips_size = body_size - pos - k * value_size;
  SparsePayload payload;
  payload.indices =
      read_index_skips(body + pos, skips_size, static_cast<std::int64_t>(k), n, context);
  payload.values = body + pos + skips_size;
  return payload;
}

}  // namespace braid
