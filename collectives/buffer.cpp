#include "collectives/buffer.h"

#include "common/error.h"

namespace braid {

namespace {
constexpr const char* kDTypeNames[] = {"float32", "float64", "float16", "bfloat16",
                                       "int32",   "int64",   "uint8"};
constexpr const char* kOpNames[] = {"sum", "avg", "max", "min"};
}  // namespace

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return 4;
    case DType::kFloat64:
      return 8;
    case DType::kFloat16:
      return 2;
    case DType::kBFloat16:
      return 2;
    case DType::kInt32:
      return 4;
    case DType::kInt64:
      return 8;
    case DType::kUInt8:
      return 1;
  }
  BRAID_CHECK(false, "unknown dtype ", static_cast<int>(dtype));
}

const char* dtype_name(DType dtype) { return kDTypeNames[static_cast<int>(dtype)]; }

DType parse_dtype(const std::string& name) {
  for (int i = 0; i < 7; ++i) {
    if (name == kDTypeNames[i]) return static_cast<DType>(i);
  }
  throw ConfigError(str_cat("unknown dtype '", name,
                            "' (valid: float32, float64, float16, bfloat16, int32, int64, uint8)"));
}

const char* reduce_op_name(ReduceOp op) { return kOpNames[static_cast<int>(op)]; }

void check_reducible(DType dtype, ReduceOp op) {
  BRAID_CHECK(dtype != DType::kUInt8, "cannot ", kOpNames[static_cast<int>(op)],
              "-reduce uint8: it is raw bytes; reduce a numeric dtype, or gather the bytes");
}

ReduceOp parse_reduce_op(const std::string& name) {
  for (int i = 0; i < 4; ++i) {
    if (name == kOpNames[i]) return static_cast<ReduceOp>(i);
  }
  throw ConfigError(str_cat("unknown reduce op '", name, "' (valid: sum, avg, max, min)"));
}

}  // namespace braid
