#include "compression/compressor_topk.h"

#include <ATen/ATen.h>

#include <cstring>

#include "common/error.h"
#include "compression/payload.h"

namespace braid {
namespace {

// Indices travel as uint32 when every index fits: half the bytes of int64 for real buckets.
std::size_t index_bytes(std::int64_t n) {
  return n <= (std::int64_t{1} << 32) ? sizeof(std::uint32_t) : sizeof(std::uint64_t);
}

template <typename Index>
void write_indices(std::uint8_t* out, const std::int64_t* indices, std::int64_t k) {
  for (std::int64_t i = 0; i < k; ++i) {
    auto index = static_cast<Index>(indices[i]);
    std::memcpy(out + i * sizeof(Index), &index, sizeof(Index));
  }
}

template <typename Index>
void read_indices(const std::uint8_t* in, std::int64_t k, std::vector<std::int64_t>& indices) {
  for (std::int64_t i = 0; i < k; ++i) {
    Index index;
    std::memcpy(&index, in + i * sizeof(Index), sizeof(Index));
    indices[i] = static_cast<std::int64_t>(index);
  }
}

}  // namespace

std::vector<std::uint8_t> CompressorTopK::encode(const at::Tensor& input,
                                                 const PayloadContext& context) {
  DType dtype = payload_value_dtype(input);
  const std::int64_t n = input.numel(), k = kept_elements(ratio_, n);
  at::Tensor flat = input.view({n});
  at::Tensor indices =
      k == 0 ? at::empty({0}, at::kLong) : std::get<1>(at::topk(flat.abs(), k, 0, true, false));
  indices = std::get<0>(at::sort(indices)).contiguous();
  at::Tensor values = flat.index_select(0, indices).contiguous();
  const std::size_t width = index_bytes(n);
  PayloadWriter writer(PayloadKind::kTopK, dtype, n,
                       sizeof(std::int64_t) + k * (width + dtype_size(dtype)));
  writer.put(k);
  std::uint8_t* out = writer.reserve(k * width);
  if (width == sizeof(std::uint32_t)) {
    write_indices<std::uint32_t>(out, indices.data_ptr<std::int64_t>(), k);
  } else {
    write_indices<std::uint64_t>(out, indices.data_ptr<std::int64_t>(), k);
  }
  writer.put_bytes(values.data_ptr(), k * dtype_size(dtype));
  return writer.finish();
}

void CompressorTopK::decode_add(const std::uint8_t* data, std::size_t size, at::Tensor& accumulator,
                                const PayloadContext& context) const {
  DType dtype = payload_value_dtype(accumulator);
  const std::int64_t n = accumulator.numel();
  PayloadReader reader(data, size, PayloadKind::kTopK, dtype, n, context);
  auto k = reader.get<std::int64_t>("k");
  if (k < 0 || k > n) reader.fail(str_cat("k = ", k, " outside [0, ", n, "]"));
  const std::size_t width = index_bytes(n);
  const std::uint8_t* index_data = reader.take_items(k, width, "indices");
  const std::uint8_t* value_data = reader.take_items(k, dtype_size(dtype), "values");
  reader.expect_end();
  std::vector<std::int64_t> indices(k);
  if (width == sizeof(std::uint32_t)) {
    read_indices<std::uint32_t>(index_data, k, indices);
  } else {
    read_indices<std::uint64_t>(index_data, k, indices);
  }
  for (std::int64_t i = 0; i < k; ++i) {
    if (indices[i] < 0 || indices[i] >= n) {
      reader.fail(str_cat("index ", indices[i], " out of range [0, ", n, ")"));
    }
    if (i > 0 && indices[i] <= indices[i - 1]) {
      reader.fail(str_cat("indices not strictly increasing: ", indices[i - 1], " then ", indices[i],
                          " at position ", i));
    }
  }
  add_values_at(accumulator, indices, value_data);
}

}  // namespace braid
