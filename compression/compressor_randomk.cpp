#include "compression/compressor_randomk.h"

#include <algorithm>
#include <unordered_set>

#include "common/error.h"
#include "compression/payload.h"
#include "compression/seeded_rng.h"

namespace braid {
namespace {
constexpr std::uint64_t kRandomKSalt = 0x524e444b00000000ULL;  // "RNDK"
}  // namespace

std::vector<std::int64_t> CompressorRandomK::indices(std::int64_t n,
                                                     const PayloadContext& context) const {
  const std::int64_t k = kept_elements(ratio_, n);
  std::vector<std::int64_t> chosen;
  chosen.reserve(k);
  if (k == n) {
    for (std::int64_t i = 0; i < n; ++i) chosen.push_back(i);
    return chosen;
  }
  // Floyd's algorithm: k distinct uniform indices in O(k) draws, whatever n is.
  SeededRng rng({kRandomKSalt, seed_, static_cast<std::uint64_t>(context.bucket),
                 static_cast<std::uint64_t>(context.step),
                 static_cast<std::uint64_t>(context.part)});
  std::unordered_set<std::int64_t> seen;
  seen.reserve(k);
  for (std::int64_t j = n - k; j < n; ++j) {
    auto t = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(j) + 1));
    std::int64_t pick = seen.insert(t).second ? t : j;
    if (pick == j) seen.insert(j);
    chosen.push_back(pick);
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

std::vector<std::uint8_t> CompressorRandomK::encode(const at::Tensor& input,
                                                    const PayloadContext& context) {
  DType dtype = payload_value_dtype(input);
  const std::int64_t n = input.numel();
  std::vector<std::int64_t> kept = indices(n, context);
  const auto k = static_cast<std::int64_t>(kept.size());
  PayloadWriter writer(PayloadKind::kRandomK, dtype, n,
                       sizeof(std::int64_t) + k * dtype_size(dtype));
  writer.put(k);
  dispatch_value(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = input.data_ptr<T>();
    for (std::int64_t index : kept) writer.put(x[index]);
  });
  return writer.finish();
}

void CompressorRandomK::decode_add(const std::uint8_t* data, std::size_t size,
                                   at::Tensor& accumulator, const PayloadContext& context) const {
  DType dtype = payload_value_dtype(accumulator);
  const std::int64_t n = accumulator.numel();
  PayloadReader reader(data, size, PayloadKind::kRandomK, dtype, n, context);
  auto k = reader.get<std::int64_t>("k");
  const std::int64_t expected = kept_elements(ratio_, n);
  if (k != expected)
    reader.fail(str_cat("k = ", k, ", expected ", expected, " for ratio ", ratio_));
  const std::uint8_t* values = reader.take_items(k, dtype_size(dtype), "values");
  reader.expect_end();
  add_values_at(accumulator, indices(n, context), values);
}

}  // namespace braid
