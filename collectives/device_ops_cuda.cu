// device_ops.h with the CUDA path: grid-stride kernels on the calling thread's default stream
// (cudaStreamPerThread), synchronised before returning (see the header for why).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>

#include "collectives/cuda_check.h"
#include "collectives/device_ops.h"

namespace braid {

namespace {

constexpr int kThreads = 256;

int blocks_for(std::int64_t n) {
  const std::int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
}

// float16/bfloat16 reduce in float32 and round once, like the CPU kernels.
template <typename T>
__device__ float widen(T v) {
  return static_cast<float>(v);
}
template <>
__device__ float widen<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ float widen<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <typename T>
__device__ T narrow(float v) {
  return static_cast<T>(v);
}
template <>
__device__ __half narrow<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __nv_bfloat16 narrow<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T, typename Acc>
__global__ void reduce_kernel(T* dst, const T* src, std::int64_t n, int op) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const Acc a = static_cast<Acc>(widen(dst[i])), b = static_cast<Acc>(widen(src[i]));
    Acc r = a + b;  // kSum and kAvg
    if (op == static_cast<int>(ReduceOp::kMax)) r = a < b ? b : a;
    if (op == static_cast<int>(ReduceOp::kMin)) r = b < a ? b : a;
    dst[i] = narrow<T>(static_cast<float>(r));
  }
}

// Integer and 64-bit types reduce in their own type (widen/narrow through float would lose bits).
template <typename T>
__global__ void reduce_exact_kernel(T* dst, const T* src, std::int64_t n, int op) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const T a = dst[i], b = src[i];
    T r = a + b;
    if (op == static_cast<int>(ReduceOp::kMax)) r = a < b ? b : a;
    if (op == static_cast<int>(ReduceOp::kMin)) r = b < a ? b : a;
    dst[i] = r;
  }
}

template <typename T>
__global__ void divide_exact_kernel(T* dst, std::int64_t n, int divisor) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = static_cast<T>(dst[i] / static_cast<T>(divisor));
  }
}

template <typename T>
__global__ void divide_widened_kernel(T* dst, std::int64_t n, int divisor) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = narrow<T>(widen(dst[i]) / static_cast<float>(divisor));
  }
}

void finish(const char* what) {
  BRAID_CUDA_CHECK(cudaGetLastError());
  cuda_check(cudaStreamSynchronize(cudaStreamPerThread), what);
}

}  // namespace

bool cuda_built() { return true; }

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes) {
  if (!bytes || dst == src) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  CudaDeviceGuard guard(dst_device.is_cuda() ? dst_device.index : src_device.index);
  BRAID_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, cudaStreamPerThread));
  finish("cudaStreamSynchronize after a copy");
}

void* device_alloc(std::size_t bytes, Device device) {
  BRAID_CHECK(device.is_cuda(), "device_alloc on ", device.str());
  CudaDeviceGuard guard(device.index);
  void* data = nullptr;
  const cudaError_t rc = cudaMalloc(&data, bytes ? bytes : 1);
  if (rc != cudaSuccess) {
    cudaGetLastError();
    throw CommError(str_cat("cudaMalloc of ", bytes, " bytes on ", device.str(),
                            " failed: ", cudaGetErrorString(rc)));
  }
  return data;
}

void device_free(void* data, Device device) noexcept {
  if (data) cudaFree(data);
}

void device_reduce_into(Buffer dst, const void* src, ReduceOp op) {
  const std::int64_t n = dst.count;
  if (n == 0) return;
  CudaDeviceGuard guard(dst.device.index);
  const int grid = blocks_for(n), o = static_cast<int>(op);
  cudaStream_t s = cudaStreamPerThread;
  switch (dst.dtype) {
    case DType::kFloat32:
      reduce_kernel<float, float><<<grid, kThreads, 0, s>>>(static_cast<float*>(dst.data),
                                                            static_cast<const float*>(src), n, o);
      break;
    case DType::kFloat64:
      reduce_exact_kernel<<<grid, kThreads, 0, s>>>(static_cast<double*>(dst.data),
                                                    static_cast<const double*>(src), n, o);
      break;
    case DType::kInt32:
      reduce_exact_kernel<<<grid, kThreads, 0, s>>>(static_cast<std::int32_t*>(dst.data),
                                                    static_cast<const std::int32_t*>(src), n, o);
      break;
    case DType::kInt64:
      reduce_exact_kernel<<<grid, kThreads, 0, s>>>(static_cast<std::int64_t*>(dst.data),
                                                    static_cast<const std::int64_t*>(src), n, o);
      break;
    case DType::kFloat16:
      reduce_kernel<__half, float><<<grid, kThreads, 0, s>>>(static_cast<__half*>(dst.data),
                                                             static_cast<const __half*>(src), n, o);
      break;
    case DType::kBFloat16:
      reduce_kernel<__nv_bfloat16, float><<<grid, kThreads, 0, s>>>(
          static_cast<__nv_bfloat16*>(dst.data), static_cast<const __nv_bfloat16*>(src), n, o);
      break;
    case DType::kUInt8:
      return;  // rejected by check_reducible in reduce_into
  }
  finish("the CUDA reduce kernel");
}

void device_finish_avg(Buffer dst, int divisor) {
  const std::int64_t n = dst.count;
  if (n == 0) return;
  CudaDeviceGuard guard(dst.device.index);
  const int grid = blocks_for(n);
  cudaStream_t s = cudaStreamPerThread;
  switch (dst.dtype) {
    case DType::kFloat32:
      divide_exact_kernel<<<grid, kThreads, 0, s>>>(static_cast<float*>(dst.data), n, divisor);
      break;
    case DType::kFloat64:
      divide_exact_kernel<<<grid, kThreads, 0, s>>>(static_cast<double*>(dst.data), n, divisor);
      break;
    case DType::kInt32:
      divide_exact_kernel<<<grid, kThreads, 0, s>>>(static_cast<std::int32_t*>(dst.data), n,
                                                    divisor);
      break;
    case DType::kInt64:
      divide_exact_kernel<<<grid, kThreads, 0, s>>>(static_cast<std::int64_t*>(dst.data), n,
                                                    divisor);
      break;
    case DType::kFloat16:
      divide_widened_kernel<<<grid, kThreads, 0, s>>>(static_cast<__half*>(dst.data), n, divisor);
      break;
    case DType::kBFloat16:
      divide_widened_kernel<<<grid, kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(dst.data), n,
                                                      divisor);
      break;
    case DType::kUInt8:
      return;
  }
  finish("the CUDA average kernel");
}

}  // namespace braid
