// The bridge from at::Tensor to collectives' Buffer. Only contiguous tensors of the supported
// dtypes, on the CPU or a CUDA device, qualify; the Buffer aliases the tensor's memory.
#pragma once

#include <ATen/core/Tensor.h>

#include "collectives/buffer.h"

namespace braid {

DType dtype_of(c10::ScalarType type);  // throws CheckError for unsupported types
c10::ScalarType scalar_type_of(DType dtype);
// The Buffer carries the tensor's device (CPU or CUDA); throws CheckError unless contiguous
// memory on one of those.
Buffer as_buffer(const at::Tensor& tensor);

}  // namespace braid
