#include "compression/compressor.h"

#include "compression/payload.h"
#include "compression/sparse_compressor.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace braid {

void Compressor::decode_add(const std::uint8_t* data, std::size_t size, at::Tensor& accumulator,
                            const PayloadContext& context) const {
  at::Tensor decoded = at::empty_like(accumulator);
  decode(data, size, decoded, context);
  accumulator.add_(decoded);
}

void SparseCompressor::decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
                              const PayloadContext& context) const {
  device_value_dtype(output);  // checks the tensor before it is touched
  output.zero_();
  decode_add(data, size, output, context);
}

std::int64_t Compressor::kept_elements(double ratio, std::int64_t count) {
  if (count == 0) return 0;
  auto k = static_cast<std::int64_t>(std::llround(ratio * static_cast<double>(count)));
  return std::min(count, std::max<std::int64_t>(1, k));
}

}  // namespace braid
