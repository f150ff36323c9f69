// The bridge from at::Tensor to collectives' Buffer. Only contiguous tensors of the supported
// dtypes, on the CPU or a CUDA device, qualify; the Buffer aliases the tensor's memory.
#pragma once

#include <ATen/core/Tensor.h>

#include "collectives/buffer.h"
#include "common/error.h"

namespace braid {

DType dtype_of(c10::ScalarType type);  // throws CheckError for unsupported types
c10::ScalarType scalar_type_of(DType dtype);
// The Buffer carries the tensor's device (CPU or CUDA); throws CheckError unless contiguous
// memory on one of those.
Buffer as_buffer(const at::Tensor& tensor);

// The host address of a contiguous CPU tensor's data, for code that reads or writes it through a
// raw pointer; a CheckError naming `what` and the device for any other tensor (device memory read
// through a host pointer crashes, or silently reads garbage). Every raw read of a parameter or
// bucket goes through it, so the CPU tests catch a path a GPU run would crash on.
void* host_data(const at::Tensor& tensor, const char* what);
template <typename T>
T* host_data(const at::Tensor& tensor, const char* what) {
  BRAID_CHECK(tensor.scalar_type() == c10::CppTypeToScalarType<T>::value, what, ": a ",
              c10::toString(tensor.scalar_type()), " tensor read as ",
              c10::toString(c10::CppTypeToScalarType<T>::value));
  return static_cast<T*>(host_data(tensor, what));
}

}  // namespace braid
