#include "collectives/reduce.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>

#include "collectives/device_ops.h"
#include "common/error.h"

namespace braid {

namespace {

template <typename T>
void reduce_typed(T* __restrict dst, const T* __restrict src, std::int64_t n, ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      for (std::int64_t i = 0; i < n; ++i) dst[i] += src[i];
      return;
    case ReduceOp::kMax:
      for (std::int64_t i = 0; i < n; ++i) dst[i] = std::max(dst[i], src[i]);
      return;
    case ReduceOp::kMin:
      for (std::int64_t i = 0; i < n; ++i) dst[i] = std::min(dst[i], src[i]);
      return;
  }
}

// 16-bit floats: widen to float32 in blocks, reduce there, round once.
template <typename T>
void reduce_widened(T* dst, const T* src, std::int64_t n, ReduceOp op) {
  constexpr std::int64_t kBlock = 256;
  float a[kBlock], b[kBlock];
  for (std::int64_t start = 0; start < n; start += kBlock) {
    std::int64_t len = std::min(kBlock, n - start);
    for (std::int64_t i = 0; i < len; ++i) {
      a[i] = static_cast<float>(dst[start + i]);
      b[i] = static_cast<float>(src[start + i]);
    }
    reduce_typed(a, b, len, op);
    for (std::int64_t i = 0; i < len; ++i) dst[start + i] = static_cast<T>(a[i]);
  }
}

template <typename T>
void divide_typed(T* dst, std::int64_t n, int divisor) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(dst[i] / static_cast<T>(divisor));
}

template <typename T>
void divide_widened(T* dst, std::int64_t n, int divisor) {
  const float d = static_cast<float>(divisor);
  for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(static_cast<float>(dst[i]) / d);
}

}  // namespace

void reduce_into(Buffer dst, const void* src, ReduceOp op) {
  check_reducible(dst.dtype, op);
  if (dst.device.is_cuda()) return device_reduce_into(dst, src, op);
  const std::int64_t n = dst.count;
  switch (dst.dtype) {
    case DType::kFloat32:
      return reduce_typed(static_cast<float*>(dst.data), static_cast<const float*>(src), n, op);
    case DType::kFloat64:
      return reduce_typed(static_cast<double*>(dst.data), static_cast<const double*>(src), n, op);
    case DType::kInt32:
      return reduce_typed(static_cast<std::int32_t*>(dst.data),
                          static_cast<const std::int32_t*>(src), n, op);
    case DType::kInt64:
      return reduce_typed(static_cast<std::int64_t*>(dst.data),
                          static_cast<const std::int64_t*>(src), n, op);
    case DType::kFloat16:
      return reduce_widened(static_cast<c10::Half*>(dst.data), static_cast<const c10::Half*>(src),
                            n, op);
    case DType::kBFloat16:
      return reduce_widened(static_cast<c10::BFloat16*>(dst.data),
                            static_cast<const c10::BFloat16*>(src), n, op);
    case DType::kUInt8:
      return;  // rejected by check_reducible above
  }
}

void finish_avg(Buffer dst, int divisor) {
  BRAID_CHECK(divisor > 0, "divisor ", divisor);
  check_reducible(dst.dtype, ReduceOp::kAvg);
  if (divisor == 1) return;
  if (dst.device.is_cuda()) return device_finish_avg(dst, divisor);
  const std::int64_t n = dst.count;
  switch (dst.dtype) {
    // A true division (not a multiply by 1/p) so avg equals sum / p exactly as a reference
    // reduction computes it.
    case DType::kFloat32:
      return divide_typed(static_cast<float*>(dst.data), n, divisor);
    case DType::kFloat64:
      return divide_typed(static_cast<double*>(dst.data), n, divisor);
    case DType::kInt32:
      return divide_typed(static_cast<std::int32_t*>(dst.data), n, divisor);
    case DType::kInt64:
      return divide_typed(static_cast<std::int64_t*>(dst.data), n, divisor);
    case DType::kFloat16:
      return divide_widened(static_cast<c10::Half*>(dst.data), n, divisor);
    case DType::kBFloat16:
      return divide_widened(static_cast<c10::BFloat16*>(dst.data), n, divisor);
    case DType::kUInt8:
      return;  // rejected by check_reducible above
  }
}

}  // namespace braid
