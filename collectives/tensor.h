// The bridge from at::Tensor to collectives' Buffer. Only contiguous tensors of the supported
// dtypes qualify; the Buffer aliases the tensor's memory.
#pragma once

#include <ATen/core/Tensor.h>

#include "collectives/buffer.h"

namespace braid {

DType dtype_of(c10::ScalarType type);  // throws CheckError for unsupported types
c10::ScalarType scalar_type_of(DType dtype);
Buffer as_buffer(const at::Tensor& tensor);  // throws CheckError unless contiguous CPU memory

}  // namespace braid
