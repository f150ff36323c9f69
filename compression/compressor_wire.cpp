#include "compression/compressor_wire.h"

#include <ATen/ATen.h>

#include <limits>

#include "common/error.h"
#include "compression/payload.h"

namespace braid {

std::vector<std::uint8_t> CompressorWire::encode(const at::Tensor& input,
                                                 const PayloadContext& context) {
  std::vector<std::uint8_t> out(wire_bytes(wire_, input.numel()) + 1, 0);
  // Stage 1 encodes an owner's mean, which is NaN where a flagged payload went into it.
  const bool flagged = flag_ || (context.stage > 0 && !at::isfinite(input).all().item<bool>());
  if (flagged) {
    out.back() = 1;
  } else {
    wire_encode(wire_, input, out.data());
  }
  return out;
}

void CompressorWire::decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
                            const PayloadContext& context) const {
  if (size != wire_bytes(wire_, output.numel()) + 1) {
    throw_payload_error(context,
                        str_cat(size, " bytes, expected ", wire_bytes(wire_, output.numel()) + 1));
  }
  if (data[size - 1] != 0) {
    output.fill_(std::numeric_limits<double>::quiet_NaN());
    return;
  }
  output.zero_();
  wire_decode_add(wire_, data, size - 1, output, context);
}

}  // namespace braid
