// Device operations of the collectives layer: memory, copies and the reduction kernels for CUDA
// Buffers. One header, two implementations chosen by the build (cmake/BraidCuda.cmake):
// device_ops_cuda.cu with the CUDA path, device_ops_cpu.cpp without it, where every CUDA
// request throws CommError naming the build option. No #if in the callers.
//
// Kernels and copies run on the calling thread's default stream and have completed when these
// functions return: algorithms are straight-line code, and the next send (on the NCCL
// transport's own stream) must see the reduced bytes. Any thread may call them.
#pragma once

#include <cstddef>

#include "collectives/buffer.h"

namespace braid {

// True when braid was built with the CUDA path (BRAID_CUDA on and found).
bool cuda_built();
// GPUs visible to this process; 0 without the CUDA path or without a driver (never throws).
int cuda_device_count();

// dst = src for `bytes` bytes, between any pair of CPU and CUDA memory.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes);
void* device_alloc(std::size_t bytes, Device device);  // CUDA memory; CommError on failure
void device_free(void* data, Device device) noexcept;

// The CUDA kernels behind reduce_into / finish_avg (collectives/reduce.h) for CUDA buffers:
// the same semantics (16-bit floats reduced in float32, avg as a true division).
void device_reduce_into(Buffer dst, const void* src, ReduceOp op);
void device_finish_avg(Buffer dst, int divisor);

// Owns CUDA memory (RAII); moves, never copies.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  DeviceMemory(std::size_t bytes, Device device)
      : data_(device_alloc(bytes, device)), bytes_(bytes), device_(device) {}
  ~DeviceMemory() { device_free(data_, device_); }
  DeviceMemory(DeviceMemory&& o) noexcept { swap(o); }
  DeviceMemory& operator=(DeviceMemory&& o) noexcept {
    swap(o);
    return *this;
  }
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void swap(DeviceMemory& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    std::swap(device_, o.device_);
  }
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_{};
};

}  // namespace braid
