// CUDA return-code checking for the CUDA-path files only (device_ops_cuda.cu,
// transport_nccl.cpp): every cudaError_t becomes a CommError naming the call and CUDA's message.
// Included only by files the build compiles with the CUDA path, so the CPU build never needs
// the CUDA headers.
#pragma once

#include <cuda_runtime_api.h>

#include "common/error.h"

namespace braid {

inline void cuda_check(cudaError_t rc, const char* call) {
  if (rc != cudaSuccess) {
    throw CommError(str_cat(call, " failed: ", cudaGetErrorName(rc), ": ", cudaGetErrorString(rc)));
  }
}
#define BRAID_CUDA_CHECK(call) ::braid::cuda_check((call), #call)

// Makes `index` the calling thread's current device for its scope, then restores the previous
// one (the communication thread serves one device, the caller may use another).
class CudaDeviceGuard {
 public:
  explicit CudaDeviceGuard(int index) {
    BRAID_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != index) BRAID_CUDA_CHECK(cudaSetDevice(index));
  }
  ~CudaDeviceGuard() { cudaSetDevice(previous_); }
  CudaDeviceGuard(const CudaDeviceGuard&) = delete;
  CudaDeviceGuard& operator=(const CudaDeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace braid
