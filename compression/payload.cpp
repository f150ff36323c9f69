#include "compression/payload.h"

#include <ATen/ATen.h>

#include <cstring>

#include "collectives/tensor.h"
#include "common/error.h"

namespace braid {

DType payload_value_dtype(const at::Tensor& tensor) {
  BRAID_CHECK(tensor.device().is_cpu() && tensor.is_contiguous(),
              "compressors take contiguous CPU tensors");
  DType dtype = dtype_of(tensor.scalar_type());
  BRAID_CHECK(dtype == DType::kFloat32 || dtype == DType::kFloat64,
              "compressors take float32 or float64 tensors, not ", dtype_name(dtype));
  return dtype;
}

DType device_value_dtype(const at::Tensor& tensor) {
  BRAID_CHECK((tensor.device().is_cpu() || tensor.device().is_cuda()) && tensor.is_contiguous(),
              "device compressors take contiguous CPU or CUDA tensors, not ",
              tensor.device().str());
  DType dtype = dtype_of(tensor.scalar_type());
  BRAID_CHECK(dtype == DType::kFloat32 || dtype == DType::kFloat64,
              "compressors take float32 or float64 tensors, not ", dtype_name(dtype));
  return dtype;
}

void throw_payload_error(const PayloadContext& context, const std::string& what) {
  throw CommError(str_cat("payload from rank ", context.source_rank, " for bucket ", context.bucket,
                          ": ", what));
}

PayloadWriter::PayloadWriter(PayloadKind kind, DType dtype, std::int64_t count,
                             std::size_t body_bytes)
    : bytes_(kPayloadHeaderBytes + body_bytes) {
  put(kPayloadMagic);
  put(static_cast<std::uint8_t>(kind));
  put(kPayloadVersion);
  put(static_cast<std::uint8_t>(dtype));
  put(count);
}

std::uint8_t* PayloadWriter::reserve(std::size_t size) {
  BRAID_CHECK(size <= bytes_.size() - written_, "payload writer: body larger than announced");
  std::uint8_t* at = bytes_.data() + written_;
  written_ += size;
  return at;
}

void PayloadWriter::put_bytes(const void* data, std::size_t size) {
  if (size > 0) std::memcpy(reserve(size), data, size);
}

std::vector<std::uint8_t> PayloadWriter::finish() {
  BRAID_CHECK(written_ == bytes_.size(), "payload writer: body smaller than announced");
  return std::move(bytes_);
}

PayloadReader::PayloadReader(const std::uint8_t* data, std::size_t size, PayloadKind kind,
                             DType dtype, std::int64_t count, const PayloadContext& context)
    : data_(data), size_(size), context_(context) {
  if (size < kPayloadHeaderBytes) {
    fail(str_cat(size, " bytes, shorter than the ", kPayloadHeaderBytes, "-byte header"));
  }
  if (get<std::uint32_t>("magic") != kPayloadMagic) fail("wrong magic (not a braid payload)");
  auto got_kind = get<std::uint8_t>("kind");
  if (got_kind != static_cast<std::uint8_t>(kind)) {
    fail(str_cat("payload kind ", int{got_kind}, ", expected ",
                 int{static_cast<std::uint8_t>(kind)}, " (encoded by a different compressor)"));
  }
  auto version = get<std::uint8_t>("version");
  if (version != kPayloadVersion) fail(str_cat("unsupported payload version ", int{version}));
  auto got_dtype = get<std::uint8_t>("dtype");
  if (got_dtype != static_cast<std::uint8_t>(dtype)) {
    fail(str_cat("value dtype code ", int{got_dtype}, ", expected ", dtype_name(dtype)));
  }
  auto got_count = get<std::int64_t>("count");
  if (got_count != count) fail(str_cat(got_count, " elements, expected ", count));
}

const std::uint8_t* PayloadReader::take_items(std::uint64_t count, std::size_t item_bytes,
                                              const char* what) {
  // Compared by division so that a hostile count cannot overflow the product.
  if (item_bytes != 0 && count > remaining() / item_bytes) {
    fail(str_cat("truncated: ", what, " needs ", count, " x ", item_bytes, " bytes, ", remaining(),
                 " left"));
  }
  const std::uint8_t* at = data_ + offset_;
  offset_ += static_cast<std::size_t>(count) * item_bytes;
  return at;
}

void PayloadReader::expect_end() const {
  if (remaining() != 0) fail(str_cat(remaining(), " bytes past the end of the payload"));
}

namespace {

// add_values_at for a CUDA accumulator: the k pairs go to the device and add in one index_add_.
void add_values_on_device(at::Tensor& accumulator, const std::vector<std::int64_t>& indices,
                          const std::uint8_t* values) {
  device_value_dtype(accumulator);
  const auto k = static_cast<std::int64_t>(indices.size());
  if (k == 0) return;
  at::Tensor where = at::empty({k}, at::TensorOptions().dtype(at::kLong));
  at::Tensor what = at::empty({k}, at::TensorOptions().dtype(accumulator.scalar_type()));
  std::memcpy(where.data_ptr(), indices.data(), static_cast<std::size_t>(k) * sizeof(std::int64_t));
  std::memcpy(what.data_ptr(), values, static_cast<std::size_t>(k) * what.element_size());
  accumulator.view({-1}).index_add_(0, where.to(accumulator.device()),
                                    what.to(accumulator.device()));
}

}  // namespace

void add_values_at(at::Tensor& accumulator, const std::vector<std::int64_t>& indices,
                   const std::uint8_t* values) {
  if (accumulator.device().is_cuda()) return add_values_on_device(accumulator, indices, values);
  dispatch_value(payload_value_dtype(accumulator), [&](auto tag) {
    using T = decltype(tag);
    T* acc = accumulator.data_ptr<T>();
    for (std::size_t i = 0; i < indices.size(); ++i) {
      T value;
      std::memcpy(&value, values + i * sizeof(T), sizeof(T));
      acc[indices[i]] += value;
    }
  });
}

}  // namespace braid
