#include "compression/compressor_none.h"

#include <cstring>

#include "compression/payload.h"

namespace braid {

std::vector<std::uint8_t> CompressorNone::encode(const at::Tensor& input,
                                                 const PayloadContext& context) {
  DType dtype = payload_value_dtype(input);
  std::size_t bytes = static_cast<std::size_t>(input.numel()) * dtype_size(dtype);
  PayloadWriter writer(PayloadKind::kNone, dtype, input.numel(), bytes);
  writer.put_bytes(input.data_ptr(), bytes);
  return writer.finish();
}

void CompressorNone::decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
                            const PayloadContext& context) const {
  DType dtype = payload_value_dtype(output);
  PayloadReader reader(data, size, PayloadKind::kNone, dtype, output.numel(), context);
  const std::uint8_t* values = reader.take_items(output.numel(), dtype_size(dtype), "values");
  reader.expect_end();
  if (output.numel() > 0) {
    std::memcpy(output.data_ptr(), values, output.numel() * dtype_size(dtype));
  }
}

}  // namespace braid
