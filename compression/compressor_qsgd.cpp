#include "compression/compressor_qsgd.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "compression/bit_pack.h"
#include "compression/payload.h"
#include "compression/seeded_rng.h"

namespace braid {
namespace {

constexpr std::uint64_t kQsgdSalt = 0x5153474400000000ULL;  // "QSGD": its own random stream

std::int64_t chunk_count(std::int64_t n) {
  return (n + CompressorQsgd::kChunk - 1) / CompressorQsgd::kChunk;
}

}  // namespace

CompressorQsgd::CompressorQsgd(int bits, std::uint64_t seed)
    : bits_(bits), levels_((1u << bits) - 1), seed_(seed) {
  BRAID_CHECK(bits >= 1 && bits <= 8, "qsgd bits must be in 1..8, got ", bits);
}

std::vector<std::uint8_t> CompressorQsgd::encode(const at::Tensor& input,
                                                 const PayloadContext& context) {
  DType dtype = payload_value_dtype(input);
  const std::int64_t n = input.numel(), chunks = chunk_count(n);
  const int width = bits_ + 1;
  PayloadWriter writer(PayloadKind::kQsgd, dtype, n,
                       1 + chunks * sizeof(float) + packed_bytes(n, width));
  writer.put(static_cast<std::uint8_t>(bits_));
  SeededRng rng(
      {kQsgdSalt, seed_, static_cast<std::uint64_t>(context.bucket),
       static_cast<std::uint64_t>(context.step), static_cast<std::uint64_t>(context.source_rank),
       static_cast<std::uint64_t>(context.part), static_cast<std::uint64_t>(context.stage)});
  dispatch_value(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = input.data_ptr<T>();
    std::vector<float> norms(chunks);
    for (std::int64_t c = 0; c < chunks; ++c) {
      double squares = 0;
      for (std::int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
        squares += static_cast<double>(x[i]) * x[i];
      }
      norms[c] = static_cast<float>(std::sqrt(squares));
    }
    writer.put_bytes(norms.data(), norms.size() * sizeof(float));
    BitWriter codes(writer.reserve(packed_bytes(n, width)), packed_bytes(n, width));
    for (std::int64_t i = 0; i < n; ++i) {
      double norm = norms[i / kChunk];
      std::uint32_t level = 0;
      if (norm > 0) {
        double scaled = levels_ * std::abs(static_cast<double>(x[i])) / norm;
        // float32 rounding of the norm can put |x| a hair above it: clamp to the top level.
        scaled = std::min(scaled, static_cast<double>(levels_));
        double floor = std::floor(scaled);
        level = static_cast<std::uint32_t>(floor) + (rng.uniform() < scaled - floor ? 1 : 0);
      }
      std::uint32_t negative = x[i] < 0 ? 1 : 0;
      codes.put(level | (negative << bits_), width);
    }
    codes.flush();
  });
  return writer.finish();
}

void CompressorQsgd::decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
                            const PayloadContext& context) const {
  DType dtype = payload_value_dtype(output);
  const std::int64_t n = output.numel(), chunks = chunk_count(n);
  const int width = bits_ + 1;
  PayloadReader reader(data, size, PayloadKind::kQsgd, dtype, n, context);
  auto bits = reader.get<std::uint8_t>("bit width");
  if (bits != bits_) reader.fail(str_cat("encoded with ", int{bits}, " bits, expected ", bits_));
  std::vector<float> norms(chunks);
  const std::uint8_t* norm_bytes = reader.take_items(chunks, sizeof(float), "chunk norms");
  if (chunks > 0) std::memcpy(norms.data(), norm_bytes, norms.size() * sizeof(float));
  for (std::int64_t c = 0; c < chunks; ++c) {
    if (!(std::isfinite(norms[c]) && norms[c] >= 0)) {
      reader.fail(str_cat("chunk ", c, " has norm ", norms[c], " (must be finite and >= 0)"));
    }
  }
  BitReader codes(reader.take(packed_bytes(n, width), "codes"), packed_bytes(n, width));
  reader.expect_end();
  const std::uint32_t level_mask = levels_;  // every bits-wide level is in [0, s]
  dispatch_value(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* y = output.data_ptr<T>();
    for (std::int64_t i = 0; i < n; ++i) {
      std::uint32_t code = codes.get(width);
      double value = static_cast<double>(norms[i / kChunk]) * (code & level_mask) / levels_;
      y[i] = static_cast<T>((code >> bits_) ? -value : value);
    }
  });
}

}  // namespace braid
