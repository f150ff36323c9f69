#include "compression/compressor_sign.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>

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
  if (input.device().is_cuda()) return encode_with_aten(input);
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

// The same payload from a CUDA tensor: scales and packed bits are computed on the device
// (little-endian bit order, as BitWriter), and only they come to the host. A scale may differ
// from the CPU's in its last bit (the device sums in another order); every rank decodes the
// bytes sent, so ranks still agree.
std::vector<std::uint8_t> CompressorSign::encode_with_aten(const at::Tensor& input) {
  DType dtype = device_value_dtype(input);
  const std::int64_t n = input.numel(), chunks = chunks_of(n);
  PayloadWriter writer(PayloadKind::kSign, dtype, n, chunks * sizeof(float) + packed_bytes(n, 1));
  at::Tensor x = input.view({n});
  at::Tensor l1 = at::constant_pad_nd(x.abs().to(at::kDouble), {0, chunks * kChunk - n})
                      .view({chunks, kChunk})
                      .sum(1);
  at::Tensor sizes = at::full({chunks}, static_cast<double>(kChunk), l1.options());
  if (chunks > 0) sizes[chunks - 1] = static_cast<double>(n - (chunks - 1) * kChunk);
  at::Tensor scales = (l1 / sizes).to(at::kFloat).cpu();
  for (std::int64_t c = 0; c < chunks; ++c) writer.put(scales.data_ptr<float>()[c]);
  const auto bytes = static_cast<std::int64_t>(packed_bytes(n, 1));
  at::Tensor bits = at::constant_pad_nd(x.lt(0).to(at::kInt), {0, bytes * 8 - n}).view({bytes, 8});
  at::Tensor weights = at::pow(2, at::arange(8, bits.options()));
  at::Tensor packed = (bits * weights).sum(1).to(at::kByte).cpu();
  if (bytes > 0) std::memcpy(writer.reserve(bytes), packed.data_ptr(), bytes);
  return writer.finish();
}

void CompressorSign::decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
                            const PayloadContext& context) const {
  if (output.device().is_cuda()) {
    // Decoded on the host (the payload is there), then one copy to the device.
    device_value_dtype(output);
    at::Tensor host = at::empty(output.sizes(), output.options().device(at::kCPU));
    decode(data, size, host, context);
    output.copy_(host);
    return;
  }
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
