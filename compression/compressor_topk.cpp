#include "compression/compressor_topk.h"

#include <ATen/ATen.h>

#include "compression/payload.h"
#include "compression/seeded_rng.h"
#include "compression/sparse_select.h"

namespace braid {
namespace {
constexpr std::uint64_t kTopKSalt = 0x544f504b00000000ULL;  // "TOPK"
}  // namespace

std::vector<std::uint8_t> CompressorTopK::encode(const at::Tensor& input,
                                                 const PayloadContext& context) {
  device_value_dtype(input);
  const std::int64_t n = input.numel();
  at::Tensor flat = input.view({n});
  SeededRng rng = rng_of(context);
  at::Tensor indices = select_top_k(flat, kept_elements(kept_ratio(context.step), n), rng).indices;
  // Selected on the input's device; only the k indices and values come to the host.
  return encode_sparse(PayloadKind::kTopK, n, indices.cpu(), flat.index_select(0, indices).cpu());
}

SeededRng CompressorTopK::rng_of(const PayloadContext& context) const {
  return SeededRng({kTopKSalt, seed_, static_cast<std::uint64_t>(context.bucket),
                    static_cast<std::uint64_t>(context.step),
                    static_cast<std::uint64_t>(context.source_rank)});
}

void CompressorTopK::decode_add(const std::uint8_t* data, std::size_t size, at::Tensor& accumulator,
                                const PayloadContext& context) const {
  const DType dtype = device_value_dtype(accumulator);
  SparsePayload payload =
      decode_sparse(data, size, PayloadKind::kTopK, dtype, accumulator.numel(), context);
  add_values_at(accumulator, payload.indices, payload.values);
}

}  // namespace braid
