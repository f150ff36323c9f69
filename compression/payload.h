// Payload: the byte layout shared by the gathered (non-summable) compressors, and its
// bounds-checked reader. A payload is a header followed by a compressor-specific body:
//   magic (uint32 "BRDC") | kind (uint8) | version (uint8) | value dtype (uint8) | count (int64)
// in host byte order (every rank of a job runs the same architecture). `count` is the number of
// elements of the encoded tensor; `value dtype` its dtype (float32 or float64). Summable
// payloads (fp16, bf16) have no header: a header cannot be summed element-wise.
//
// PayloadReader checks the header against what the decoder expects and every later read against
// the bytes left; any mismatch is a CommError "payload from rank R for bucket B: ...", so a
// decoder built on it cannot read out of bounds.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "collectives/buffer.h"
#include "compression/compressor.h"

namespace braid {

enum class PayloadKind : std::uint8_t { kNone = 1, kQsgd = 2, kTopK = 3, kRandomK = 4, kSign = 5 };
constexpr std::uint32_t kPayloadMagic = 0x43445242;  // "BRDC" in little-endian memory
constexpr std::uint8_t kPayloadVersion = 3;  // 2: topk indices as varint skips; 3: sign runs
constexpr std::size_t kPayloadHeaderBytes = 4 + 1 + 1 + 1 + 8;

// The dtype of a tensor a compressor may encode or decode into: float32 or float64, contiguous,
// on the CPU (CheckError otherwise: that is the caller's bug, not a bad payload).
DType payload_value_dtype(const at::Tensor& tensor);
// The same for the compressors that run on the tensor's own device (device_compressor_names():
// ATen ops, on CUDA when the tensor is there), which also take contiguous CUDA tensors.
DType device_value_dtype(const at::Tensor& tensor);

// Calls fn(float{}) or fn(double{}) for the value dtype, so that codecs are written once as
// templates over the element type.
template <typename Fn>
decltype(auto) dispatch_value(DType dtype, Fn&& fn) {
  if (dtype == DType::kFloat64) return fn(double{});
  return fn(float{});
}

[[noreturn]] void throw_payload_error(const PayloadContext& context, const std::string& what);

// Sparse payloads (topk, randomk): accumulator[indices[i]] += value i, the values packed in the
// accumulator's dtype (unaligned). The caller has checked every index against the accumulator.
// A CUDA accumulator takes them in one index_add_ on its device (indices are distinct, so each
// value is added once, as on the CPU).
void add_values_at(at::Tensor& accumulator, const std::vector<std::int64_t>& indices,
                   const std::uint8_t* values);

class PayloadWriter {
 public:
  // Reserves the header and `body_bytes` more; finish() checks the body filled exactly that.
  PayloadWriter(PayloadKind kind, DType dtype, std::int64_t count, std::size_t body_bytes);
  template <typename T>
  void put(const T& value) {
    put_bytes(&value, sizeof(T));
  }
  void put_bytes(const void* data, std::size_t size);
  // The next `size` bytes of the body, for writers that fill them in place (bit packing).
  std::uint8_t* reserve(std::size_t size);
  std::vector<std::uint8_t> finish();

 private:
  std::vector<std::uint8_t> bytes_;
  std::size_t written_ = 0;
};

class PayloadReader {
 public:
  // Reads the header; CommError unless magic, kind, version, dtype and count are the expected.
  PayloadReader(const std::uint8_t* data, std::size_t size, PayloadKind kind, DType dtype,
                std::int64_t count, const PayloadContext& context);
  template <typename T>
  T get(const char* what) {
    T value;
    std::memcpy(&value, take(sizeof(T), what), sizeof(T));
    return value;
  }
  // The next `count` items of `item_bytes` each; CommError naming `what` if they are not there.
  const std::uint8_t* take_items(std::uint64_t count, std::size_t item_bytes, const char* what);
  const std::uint8_t* take(std::size_t size, const char* what) { return take_items(size, 1, what); }
  // CommError if bytes are left over (an oversized payload).
  void expect_end() const;
  std::size_t remaining() const { return size_ - offset_; }
  [[noreturn]] void fail(const std::string& what) const { throw_payload_error(context_, what); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t offset_ = 0;
  const PayloadContext& context_;
};

}  // namespace braid
