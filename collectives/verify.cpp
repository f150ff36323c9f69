#include "collectives/verify.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>

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
  }
  return f(float{}, false);
}

}  // namespace

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
      double tolerance = rounded ? std::abs(want) * 1e-2 + 1e-6 : 0.0;
      if (std::abs(static_cast<double>(data[i]) - want) > tolerance) ++wrong;
    }
    return wrong;
  });
}

}  // namespace braid
