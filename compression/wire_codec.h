// Wire formats of Streaming DiLoCo's pseudo-gradients (Douillard et al. 2025, arXiv 2501.18512,
// Sec. 2.4): each rank's unreduced pseudo-gradient is encoded for the wire only,
// receivers decode every rank's payload and accumulate in float32 (or the accumulator's float64).
//
//  - bfloat16: 2 bytes per element, round to nearest even; any bit pattern is a value.
//  - e3m0: 4-bit floats, 1 sign bit and 3 exponent bits, no mantissa, two codes per byte
//    (element 2i in the low nibble). Elements are cut into blocks of kE3M0Block; each block has
//    a float32 scale s = the largest finite |x| in the block, so the largest element is exact.
//    Code c = sign << 3 | e stands for sign * s * 2^(e - 7) for e in 1..7 and for zero when
//    e = 0: the 16 values of a block are +-0 and +-s * {1/64, 1/32, ..., 1/2, 1}. A magnitude
//    m = |x| / s rounds to the nearest value in the linear domain (relative error at most 1/3,
//    at 1.5 * 2^k); a tie goes to the larger magnitude; m >= 1 (an infinity) clamps to 1; m below
//    1/128 (half the smallest code) underflows to zero. NaN encodes as +0 and, like infinities,
//    is left out of the scale, so a diverged rank does not poison the other elements (its
//    parameters are NaN anyway). A block without any finite non-zero element has scale 0.
//    Payload: ceil(n / kE3M0Block) float32 scales, then ceil(n / 2) code bytes.
// A payload's length must be exactly wire_bytes(); an e3m0 scale must be finite and >= 0; any
// mismatch is a CommError "payload from rank R for bucket B: ..." (PayloadContext).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "compression/compressor.h"

namespace braid {

enum class WireFormat { kFloat32, kBFloat16, kE3M0 };

// float32 | bfloat16 | e3m0, the names outer.wire accepts.
const std::vector<std::string>& wire_names();
// ConfigError naming outer.wire and the valid names for an unknown one.
WireFormat parse_wire(const std::string& name);

constexpr std::int64_t kE3M0Block = 128;

// The 4-bit code of a magnitude already divided by its scale (sign in bit 3), and back.
std::uint8_t e3m0_code(float scaled);
float e3m0_value(std::uint8_t code);

// Bytes of one payload of `numel` elements (bfloat16 and e3m0; float32 is not gathered).
std::size_t wire_bytes(WireFormat wire, std::int64_t numel);
// Encodes a contiguous float32 or float64 tensor into exactly wire_bytes() bytes at `out`.
void wire_encode(WireFormat wire, const at::Tensor& input, std::uint8_t* out);
// Adds what the payload stands for into `accumulator` (float32 or float64, contiguous).
void wire_decode_add(WireFormat wire, const std::uint8_t* data, std::size_t size,
                     at::Tensor& accumulator, const PayloadContext& context);

}  // namespace braid
