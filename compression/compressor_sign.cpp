#include "compression/compressor_sign.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "compression/bit_pack.h"
#include "compression/payload.h"

namespace braid {

namespace {

constexpr std::uint8_t kChunkRuns = 0, kListedRuns = 1;

std::vector<std::int64_t> chunk_runs(std::int64_t n) {
  std::vector<std::int64_t> runs(
      static_cast<std::size_t>((n + CompressorSign::kChunk - 1) / CompressorSign::kChunk),
      CompressorSign::kChunk);
  if (!runs.empty()) runs.back() = n - (static_cast<std::int64_t>(runs.size()) - 1) * runs.back();
  return runs;
}

// A payload of n elements begun with its runs kind and, when listed, the runs' lengths, and the
// runs to scale: `listed` (runs_of()), or chunks when it is empty.
struct StartedPayload {
  PayloadWriter writer;
  std::vector<std::int64_t> runs;
};

StartedPayload start_payload(DType dtype, std::int64_t n, std::vector<std::int64_t> listed) {
  const bool is_listed = !listed.empty();
  std::vector<std::int64_t> runs = is_listed ? std::move(listed) : chunk_runs(n);
  const std::size_t listed_bytes = is_listed ? sizeof(std::int64_t) * (1 + runs.size()) : 0;
  PayloadWriter writer(PayloadKind::kSign, dtype, n,
                       1 + listed_bytes + runs.size() * sizeof(float) + packed_bytes(n, 1));
  writer.put(is_listed ? kListedRuns : kChunkRuns);
  if (is_listed) {
    writer.put(static_cast<std::int64_t>(runs.size()));
    writer.put_bytes(runs.data(), runs.size() * sizeof(std::int64_t));
  }
  return {std::move(writer), std::move(runs)};
}

// The runs a peer's payload declares, checked to cover exactly the n elements.
std::vector<std::int64_t> read_runs(PayloadReader& reader, std::int64_t n) {
  const auto kind = reader.get<std::uint8_t>("runs kind");
  if (kind == kChunkRuns) return chunk_runs(n);
  if (kind != kListedRuns) reader.fail(str_cat("runs kind ", int{kind}, " (must be 0 or 1)"));
  const auto count = reader.get<std::int64_t>("run count");
  if (count < 0 || count > n) reader.fail(str_cat("run count ", count, " for ", n, " elements"));
  std::vector<std::int64_t> runs(static_cast<std::size_t>(count));
  std::memcpy(runs.data(), reader.take_items(runs.size(), sizeof(std::int64_t), "run lengths"),
              runs.size() * sizeof(std::int64_t));
  std::int64_t left = n;
  for (std::int64_t length : runs) {
    if (length < 1 || length > left) {
      reader.fail(str_cat("run length ", length, " with ", left, " elements left"));
    }
    left -= length;
  }
  if (left != 0) reader.fail(str_cat("runs cover ", n - left, " of ", n, " elements"));
  return runs;
}

}  // namespace

void CompressorSign::set_layout(int bucket, const BucketLayout& layout) {
  check_bucket_layout(layout, "sign", bucket);
  layouts_[bucket] = layout;
}

std::vector<std::int64_t> CompressorSign::runs_of(std::int64_t n,
                                                  const PayloadContext& context) const {
  const auto layout = layouts_.find(context.bucket);
  if (scale_ == SignScale::kChunk || layout == layouts_.end()) return {};
  const std::int64_t end = context.offset + n;
  std::int64_t at = context.offset;
  std::vector<std::int64_t> runs;
  auto cut = [&](std::int64_t to) {  // closes the run [at, to) clipped to this range
    to = std::clamp(to, at, end);
    if (to > at) runs.push_back(to - at);
    at = to;
  };
  for (const TensorSegment& tensor : layout->second) {
    cut(tensor.offset);  // the gap before it
    cut(tensor.offset + tensor.numel());
  }
  cut(end);
  return runs;
}

std::vector<std::uint8_t> CompressorSign::encode(const at::Tensor& input,
                                                 const PayloadContext& context) {
  std::vector<std::int64_t> listed = runs_of(input.numel(), context);
  if (input.device().is_cuda()) return encode_with_aten(input, listed);
  const DType dtype = payload_value_dtype(input);
  const std::int64_t n = input.numel();
  StartedPayload started = start_payload(dtype, n, std::move(listed));
  PayloadWriter& writer = started.writer;
  const std::vector<std::int64_t>& runs = started.runs;
  dispatch_value(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = input.data_ptr<T>();
    std::int64_t begin = 0;
    for (std::int64_t length : runs) {
      double l1 = 0;
      for (std::int64_t i = begin; i < begin + length; ++i)
        l1 += std::abs(static_cast<double>(x[i]));
      writer.put(static_cast<float>(l1 / static_cast<double>(length)));
      begin += length;
    }
    BitWriter signs(writer.reserve(packed_bytes(n, 1)), packed_bytes(n, 1));
    for (std::int64_t i = 0; i < n; ++i) signs.put(x[i] < 0 ? 1 : 0, 1);
    signs.flush();
  });
  return writer.finish();
}

// The same payload from a CUDA tensor: scales and packed bits are computed on the device
// (little-endian bit order, as BitWriter), and only they come to the host. A scale may differ
// from the CPU's in its last bit (the device sums in another order); every rank decodes the
// bytes sent, so ranks still agree.
std::vector<std::uint8_t> CompressorSign::encode_with_aten(
    const at::Tensor& input, const std::vector<std::int64_t>& listed) {
  const std::int64_t n = input.numel();
  StartedPayload started = start_payload(device_value_dtype(input), n, listed);
  PayloadWriter& writer = started.writer;
  std::vector<std::int64_t>& runs = started.runs;
  const auto count = static_cast<std::int64_t>(runs.size());
  at::Tensor x = input.view({n});
  at::Tensor lengths = at::from_blob(runs.data(), {count}, at::kLong)
                           .to(x.device(), /*non_blocking=*/false,
                               /*copy=*/true);
  at::Tensor run_of = at::repeat_interleave(at::arange(count, lengths.options()), lengths);
  at::Tensor l1 = at::zeros({count}, x.options().dtype(at::kDouble))
                      .index_add_(0, run_of, x.abs().to(at::kDouble));
  at::Tensor scales = (l1 / lengths.to(at::kDouble)).to(at::kFloat).cpu();
  for (std::int64_t r = 0; r < count; ++r) writer.put(scales.data_ptr<float>()[r]);
  const auto bytes = static_cast<std::int64_t>(packed_bytes(n, 1));
  at::Tensor bits = at::constant_pad_nd(x.lt(0).to(at::kInt), {0, bytes * 8 - n}).view({bytes, 8});
  at::Tensor weights = at::pow(2, at::arange(8, bits.options()));
  at::Tensor packed = (bits * weights).sum(1).to(at::kByte).cpu();
  if (bytes > 0) std::memcpy(writer.reserve(bytes), packed.data_ptr(), bytes);
  return writer.finish();
}

void CompressorSign::decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
                            const PayloadContext& context) const {
  if (output.device().is_cuda()) {
    // Decoded on the host (the payload is there), then one copy to the device.
    device_value_dtype(output);
    at::Tensor host = at::empty(output.sizes(), output.options().device(at::kCPU));
    decode(data, size, host, context);
    output.copy_(host);
    return;
  }
  DType dtype = payload_value_dtype(output);
  const std::int64_t n = output.numel();
  PayloadReader reader(data, size, PayloadKind::kSign, dtype, n, context);
  const std::vector<std::int64_t> runs = read_runs(reader, n);
  std::vector<float> scales(runs.size());
  for (float& scale : scales) {
    scale = reader.get<float>("scale");
    if (!(std::isfinite(scale) && scale >= 0)) {
      reader.fail(str_cat("scale ", scale, " (must be finite and >= 0)"));
    }
  }
  BitReader signs(reader.take(packed_bytes(n, 1), "sign bits"), packed_bytes(n, 1));
  reader.expect_end();
  dispatch_value(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* y = output.data_ptr<T>();
    std::int64_t i = 0;
    for (std::size_t r = 0; r < runs.size(); ++r) {
      const T magnitude = static_cast<T>(scales[r]);
      for (const std::int64_t end = i + runs[r]; i < end; ++i) {
        y[i] = signs.get(1) ? -magnitude : magnitude;
      }
    }
  });
}

SignScale sign_scale_of(const std::string& name) {
  if (name == "tensor") return SignScale::kTensor;
  if (name == "chunk") return SignScale::kChunk;
  throw ConfigError(str_cat("compression.scale: unknown scale '", name,
                            "' (valid: ", join(sign_scale_names()), ")"));
}

const std::vector<std::string>& sign_scale_names() {
  static const std::vector<std::string> names = {"tensor", "chunk"};
  return names;
}

}  // namespace braid
