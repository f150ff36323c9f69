// Buffer: a typed view of contiguous memory that collectives read and write in place.
// Collectives never own the memory: the caller keeps it alive until the operation's Work
// completes (as with MPI's nonblocking calls). DType and ReduceOp are braid's own so that this
// layer stays free of heavy framework headers; collectives/tensor.h converts at::Tensor.
// A Buffer carries its device: CPU memory, or CUDA memory that only device-capable transports
// (NCCL) and the CUDA kernels behind collectives/device_ops.h touch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace braid {

// kUInt8 is raw bytes (compressed payloads, serialised messages): it moves through every
// collective that does not reduce; reductions on it are rejected (check_reducible).
enum class DType : std::uint8_t { kFloat32, kFloat64, kFloat16, kBFloat16, kInt32, kInt64, kUInt8 };
enum class ReduceOp : std::uint8_t { kSum, kAvg, kMax, kMin };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
DType parse_dtype(const std::string& name);  // throws ConfigError listing the valid names
const char* reduce_op_name(ReduceOp op);
// Throws CheckError when `op` cannot reduce `dtype` (every op on kUInt8: bytes of a payload have
// no element-wise meaning).
void check_reducible(DType dtype, ReduceOp op);
ReduceOp parse_reduce_op(const std::string& name);

// Where memory lives: the CPU, or CUDA device `index`.
struct Device {
  enum Type : std::uint8_t { kCpu, kCuda };
  Type type = kCpu;
  int index = 0;

  bool is_cpu() const { return type == kCpu; }
  bool is_cuda() const { return type == kCuda; }
  bool operator==(const Device& o) const {
    return type == o.type && (is_cpu() || index == o.index);
  }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

struct Buffer {
  void* data = nullptr;
  std::int64_t count = 0;
  DType dtype = DType::kFloat32;
  Device device{};

  std::size_t bytes() const { return static_cast<std::size_t>(count) * dtype_size(dtype); }
  char* bytes_at(std::int64_t element) const {
    return static_cast<char*>(data) + static_cast<std::size_t>(element) * dtype_size(dtype);
  }
  Buffer slice(std::int64_t offset, std::int64_t n) const {
    return {bytes_at(offset), n, dtype, device};
  }
};

// Balanced split of `count` elements into `parts` pieces: the first count % parts pieces get one
// extra element. Every rank computes the same boundaries from the same arguments.
inline std::int64_t split_offset(std::int64_t count, std::int64_t parts, std::int64_t index) {
  std::int64_t base = count / parts, extra = count % parts;
  return index * base + (index < extra ? index : extra);
}
inline std::int64_t split_count(std::int64_t count, std::int64_t parts, std::int64_t index) {
  return count / parts + (index < count % parts ? 1 : 0);
}

}  // namespace braid
