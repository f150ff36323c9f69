#include "collectives/tensor.h"

#include "common/error.h"

namespace braid {

DType dtype_of(c10::ScalarType type) {
  switch (type) {
    case c10::ScalarType::Float:
      return DType::kFloat32;
    case c10::ScalarType::Double:
      return DType::kFloat64;
    case c10::ScalarType::Half:
      return DType::kFloat16;
    case c10::ScalarType::BFloat16:
      return DType::kBFloat16;
    case c10::ScalarType::Int:
      return DType::kInt32;
    case c10::ScalarType::Long:
      return DType::kInt64;
    case c10::ScalarType::Byte:
      return DType::kUInt8;
    default:
      break;
  }
  BRAID_CHECK(false, "collectives do not support tensors of type ", c10::toString(type));
}

c10::ScalarType scalar_type_of(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return c10::ScalarType::Float;
    case DType::kFloat64:
      return c10::ScalarType::Double;
    case DType::kFloat16:
      return c10::ScalarType::Half;
    case DType::kBFloat16:
      return c10::ScalarType::BFloat16;
    case DType::kInt32:
      return c10::ScalarType::Int;
    case DType::kInt64:
      return c10::ScalarType::Long;
    case DType::kUInt8:
      return c10::ScalarType::Byte;
  }
  return c10::ScalarType::Float;
}

Buffer as_buffer(const at::Tensor& tensor) {
  BRAID_CHECK(tensor.is_contiguous(), "collectives need contiguous tensors");
  const c10::Device where = tensor.device();
  BRAID_CHECK(where.is_cpu() || where.is_cuda(), "collectives move CPU and CUDA tensors; got ",
              where.str());
  Device device{};
  if (where.is_cuda()) device = Device{Device::kCuda, where.has_index() ? where.index() : 0};
  return Buffer{tensor.data_ptr(), tensor.numel(), dtype_of(tensor.scalar_type()), device};
}

void* host_data(const at::Tensor& tensor, const char* what) {
  BRAID_CHECK(tensor.device().is_cpu(), what, ": a ", tensor.device().str(),
              " tensor read through a host pointer; copy it to the CPU first");
  BRAID_CHECK(tensor.is_contiguous(), what, ": a non-contiguous tensor read as flat memory");
  return tensor.data_ptr();
}

}  // namespace braid
