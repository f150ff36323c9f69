#include "collectives/verify.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace braid {

namespace {

template <typename F>
auto dispatch(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      return f(float{}, false);
    case DType::kFloat64:
      return f(double{}, false);
    case DType::kFloat16:
      return f(c10::Half{}, false);
    case DType::kBFloat16:
      return f(c10::BFloat16{}, false);
    case DType::kInt32:
      return f(std::int32_t{}, true);
    case DType::kInt64:
      return f(std::int64_t{}, true);
    case DType::kUInt8:
      break;
  }
  BRAID_CHECK(false, "the verification pattern has no ", dtype_name(dtype),
              " form (it checks reductions)");
  return f(float{}, false);
}

// Unit roundoff (half an ulp of 1) of the floating dtypes.
double unit_roundoff(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return std::ldexp(1.0, -24);
    case DType::kFloat64:
      return std::ldexp(1.0, -53);
    case DType::kFloat16:
      return std::ldexp(1.0, -11);
    case DType::kBFloat16:
      return std::ldexp(1.0, -8);
    default:
      return 0.0;
  }
}

}  // namespace

double avg_tolerance(DType dtype, double want) {
  // The sum is exact (small integers), so avg = sum / P carries only the division's rounding:
  // |err| <= u |want| for float32/float64. float16/bfloat16 divide in float32 and round again to
  // the type: |err| <= (u32 + u + u32 u) |want| < 2u |want|. The checker's own `want` is a
  // float64 quotient (one more 2^-53 |want|, below the slack of the factor 2). So 2u |want| holds
  // every correct result (at most 1 ulp off, as ulp <= 2u |want|) and rejects anything 3 ulps
  // or more off. |want| >= 1/16 when non-zero, so no subnormal results.
  return 2 * unit_roundoff(dtype) * std::abs(want);
}

double pattern(int rank, std::int64_t i) { return static_cast<double>((rank * 7 + i * 3) % 9) - 4; }

double expected(ReduceOp op, int ranks, std::int64_t i, bool integral) {
  double sum = 0, hi = -1e9, lo = 1e9;
  for (int r = 0; r < ranks; ++r) {
    double v = pattern(r, i);
    sum += v;
    hi = std::max(hi, v);
    lo = std::min(lo, v);
  }
  switch (op) {
    case ReduceOp::kSum:
      return sum;
    case ReduceOp::kAvg:
      return integral ? std::trunc(sum / ranks) : sum / ranks;
    case ReduceOp::kMax:
      return hi;
    case ReduceOp::kMin:
      return lo;
  }
  return 0;
}

void fill_pattern(Buffer b, int rank) {
  dispatch(b.dtype, [&](auto tag, bool) {
    using T = decltype(tag);
    T* data = static_cast<T*>(b.data);
    for (std::int64_t i = 0; i < b.count; ++i) data[i] = static_cast<T>(pattern(rank, i));
  });
}

std::int64_t count_wrong(Buffer b, ReduceOp op, int ranks) {
  return dispatch(b.dtype, [&](auto tag, bool integral) {
    using T = decltype(tag);
    const T* data = static_cast<const T*>(b.data);
    const bool rounded = op == ReduceOp::kAvg && !integral;
    std::int64_t wrong = 0;
    for (std::int64_t i = 0; i < b.count; ++i) {
      double want = expected(op, ranks, i, integral);
      double tolerance = rounded ? avg_tolerance(b.dtype, want) : 0.0;
      if (std::abs(static_cast<double>(data[i]) - want) > tolerance) ++wrong;
    }
    return wrong;
  });
}

}  // namespace braid
