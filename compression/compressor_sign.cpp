#include "compression/compressor_sign.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "compression/bit_pack.h"
#include "compression/payload.h"

namespace braid {

namespace {
std::int64_t chunks_of(std::int64_t n) {
  return (n + CompressorSign::kChunk - 1) / CompressorSign::kChunk;
}
}  // namespace

std::vector<std::uint8_t> CompressorSign::encode(const at::Tensor& input,
                                                 const PayloadContext& context) {
  DType dtype = payload_value_dtype(input);
  const std::int64_t n = input.numel(), chunks = chunks_of(n);
  PayloadWriter writer(PayloadKind::kSign, dtype, n, chunks * sizeof(float) + packed_bytes(n, 1));
  dispatch_value(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = input.data_ptr<T>();
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t begin = c * kChunk, end = std::min(n, begin + kChunk);
      double l1 = 0;
      for (std::int64_t i = begin; i < end; ++i) l1 += std::abs(static_cast<double>(x[i]));
      writer.put(static_cast<float>(l1 / static_cast<double>(end - begin)));
    }
    BitWriter signs(writer.reserve(packed_bytes(n, 1)), packed_bytes(n, 1));
    for (std::int64_t i = 0; i < n; ++i) signs.put(x[i] < 0 ? 1 : 0, 1);
    signs.flush();
  });
  return writer.finish();
}

void CompressorSign::decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
                            const PayloadContext& context) const {
  DType dtype = payload_value_dtype(output);
  const std::int64_t n = output.numel(), chunks = chunks_of(n);
  PayloadReader reader(data, size, PayloadKind::kSign, dtype, n, context);
  std::vector<float> scales(static_cast<std::size_t>(chunks));
  for (float& scale : scales) {
    scale = reader.get<float>("scale");
    if (!(std::isfinite(scale) && scale >= 0)) {
      reader.fail(str_cat("scale ", scale, " (must be finite and >= 0)"));
    }
  }
  BitReader signs(reader.take(packed_bytes(n, 1), "sign bits"), packed_bytes(n, 1));
  reader.expect_end();
  dispatch_value(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* y = output.data_ptr<T>();
    for (std::int64_t i = 0; i < n; ++i) {
      const T magnitude = static_cast<T>(scales[static_cast<std::size_t>(i / kChunk)]);
      y[i] = signs.get(1) ? -magnitude : magnitude;
    }
  });
}

}  // namespace braid
