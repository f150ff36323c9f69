#include "compression/wire_codec.h"

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "compression/payload.h"

namespace braid {
namespace {

std::int64_t e3m0_blocks(std::int64_t numel) { return (numel + kE3M0Block - 1) / kE3M0Block; }

void check_size(WireFormat wire, std::size_t size, std::int64_t numel,
                const PayloadContext& context) {
  if (size != wire_bytes(wire, numel)) {
    throw_payload_error(context, str_cat(size, " bytes, expected ", wire_bytes(wire, numel),
                                         " for ", numel, " elements"));
  }
}

template <typename T>
void encode_bf16(const T* x, std::int64_t n, std::uint8_t* out) {
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint16_t bits = c10::BFloat16(static_cast<float>(x[i])).x;
    std::memcpy(out + 2 * i, &bits, 2);
  }
}

template <typename T>
void decode_add_bf16(const std::uint8_t* in, std::int64_t n, T* acc) {
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint16_t bits;
    std::memcpy(&bits, in + 2 * i, 2);
    acc[i] += static_cast<T>(static_cast<float>(c10::BFloat16(bits, c10::BFloat16::from_bits())));
  }
}

template <typename T>
void encode_e3m0(const T* x, std::int64_t n, std::uint8_t* out) {
  std::uint8_t* codes = out + 4 * e3m0_blocks(n);
  std::memset(codes, 0, static_cast<std::size_t>((n + 1) / 2));
  for (std::int64_t begin = 0; begin < n; begin += kE3M0Block) {
    const std::int64_t end = std::min(n, begin + kE3M0Block);
    float scale = 0;
    for (std::int64_t i = begin; i < end; ++i) {
      const float v = std::fabs(static_cast<float>(x[i]));
      if (std::isfinite(v)) scale = std::max(scale, v);
    }
    std::memcpy(out + 4 * (begin / kE3M0Block), &scale, 4);
    for (std::int64_t i = begin; i < end; ++i) {
      const std::uint8_t code = scale > 0 ? e3m0_code(static_cast<float>(x[i]) / scale) : 0;
      codes[i / 2] |= static_cast<std::uint8_t>(code << (4 * (i % 2)));
    }
  }
}

template <typename T>
void decode_add_e3m0(const std::uint8_t* in, std::int64_t n, T* acc,
                     const PayloadContext& context) {
  const std::uint8_t* codes = in + 4 * e3m0_blocks(n);
  for (std::int64_t begin = 0; begin < n; begin += kE3M0Block) {
    float scale;
    std::memcpy(&scale, in + 4 * (begin / kE3M0Block), 4);
    if (!std::isfinite(scale) || scale < 0) {
      throw_payload_error(context, str_cat("e3m0 block ", begin / kE3M0Block, " has scale ", scale,
                                           " (must be finite and >= 0)"));
    }
    const std::int64_t end = std::min(n, begin + kE3M0Block);
    for (std::int64_t i = begin; i < end; ++i) {
      const std::uint8_t code = (codes[i / 2] >> (4 * (i % 2))) & 0xF;
      acc[i] += static_cast<T>(scale * e3m0_value(code));
    }
  }
}

}  // namespace

const std::vector<std::string>& wire_names() {
  static const std::vector<std::string> names = {"float32", "bfloat16", "e3m0"};
  return names;
}

WireFormat parse_wire(const std::string& name) {
  if (name == "float32") return WireFormat::kFloat32;
  if (name == "bfloat16") return WireFormat::kBFloat16;
  if (name == "e3m0") return WireFormat::kE3M0;
  throw ConfigError(
      str_cat("outer.wire: unknown wire format '", name, "' (valid: ", join(wire_names()), ")"));
}

// The threshold between code k and the one below is their midpoint: 0.75 * 2^(k - 7), and
// 2^-7 between the smallest code and zero (all exact in float32); comparing with >= sends ties
// to the larger magnitude. NaN fails every comparison: code 0.
std::uint8_t e3m0_code(float scaled) {
  const std::uint8_t sign = std::signbit(scaled) && !std::isnan(scaled) ? 8 : 0;
  const float m = std::fabs(scaled);
  std::uint8_t e = 0;
  for (int k = 7; k >= 1; --k) {
    const float threshold = k == 1 ? std::ldexp(1.0f, -7) : 0.75f * std::ldexp(1.0f, k - 7);
    if (m >= threshold) {  // m >= 1, infinity included, clamps to code 7
      e = static_cast<std::uint8_t>(k);
      break;
    }
  }
  return static_cast<std::uint8_t>(sign | e);
}

float e3m0_value(std::uint8_t code) {
  const int e = code & 7;
  const float magnitude = e == 0 ? 0.0f : std::ldexp(1.0f, e - 7);
  return (code & 8) ? -magnitude : magnitude;
}

std::size_t wire_bytes(WireFormat wire, std::int64_t numel) {
  switch (wire) {
    case WireFormat::kBFloat16:
      return static_cast<std::size_t>(2 * numel);
    case WireFormat::kE3M0:
      return static_cast<std::size_t>(4 * e3m0_blocks(numel) + (numel + 1) / 2);
    case WireFormat::kFloat32:
      break;
  }
  return static_cast<std::size_t>(4 * numel);
}

void wire_encode(WireFormat wire, const at::Tensor& input, std::uint8_t* out) {
  BRAID_CHECK(wire != WireFormat::kFloat32, "float32 is not a gathered wire format");
  dispatch_value(payload_value_dtype(input), [&](auto zero) {
    using T = decltype(zero);
    const T* x = input.data_ptr<T>();
    if (wire == WireFormat::kBFloat16) {
      encode_bf16(x, input.numel(), out);
    } else {
      encode_e3m0(x, input.numel(), out);
    }
  });
}

void wire_decode_add(WireFormat wire, const std::uint8_t* data, std::size_t size,
                     at::Tensor& accumulator, const PayloadContext& context) {
  BRAID_CHECK(wire != WireFormat::kFloat32, "float32 is not a gathered wire format");
  check_size(wire, size, accumulator.numel(), context);
  dispatch_value(payload_value_dtype(accumulator), [&](auto zero) {
    using T = decltype(zero);
    T* acc = accumulator.data_ptr<T>();
    if (wire == WireFormat::kBFloat16) {
      decode_add_bf16(data, accumulator.numel(), acc);
    } else {
      decode_add_e3m0(data, accumulator.numel(), acc, context);
    }
  });
}

}  // namespace braid
