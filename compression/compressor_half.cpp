#include "compression/compressor_half.h"

#include <ATen/ATen.h>

#include <cstring>

#include "collectives/tensor.h"
#include "common/error.h"
#include "compression/payload.h"

namespace braid {

CompressorHalf::CompressorHalf(DType wire) : wire_(wire) {
  BRAID_CHECK(wire == DType::kFloat16 || wire == DType::kBFloat16,
              "CompressorHalf takes float16 or bfloat16, not ", dtype_name(wire));
}

const char* CompressorHalf::name() const { return wire_ == DType::kFloat16 ? "fp16" : "bf16"; }

std::vector<std::uint8_t> CompressorHalf::encode(const at::Tensor& input,
                                                 const PayloadContext& context) {
  device_value_dtype(input);
  // The cast runs on the input's device; only the half-size wire values come to the host.
  at::Tensor wire = input.to(scalar_type_of(wire_)).contiguous().cpu();
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(wire.numel()) * dtype_size(wire_));
  if (!bytes.empty()) std::memcpy(bytes.data(), wire.data_ptr(), bytes.size());
  return bytes;
}

void CompressorHalf::decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
                            const PayloadContext& context) const {
  device_value_dtype(output);
  std::size_t expected = static_cast<std::size_t>(output.numel()) * dtype_size(wire_);
  if (size != expected) {
    throw_payload_error(context, str_cat(size, " bytes, expected ", expected, " (", output.numel(),
                                         " ", dtype_name(wire_), " values)"));
  }
  // Copied into an aligned tensor first: `data` may sit at any offset of a gathered buffer.
  // copy_ widens on the output's device (CPU or CUDA).
  at::Tensor wire = at::empty({output.numel()}, at::TensorOptions().dtype(scalar_type_of(wire_)));
  if (size > 0) std::memcpy(wire.data_ptr(), data, size);
  output.copy_(wire.view(output.sizes()));
}

}  // namespace braid
