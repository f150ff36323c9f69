#include "collectives/collectives.h"

#include <algorithm>

#include "common/error.h"

namespace braid {

std::vector<std::vector<std::uint8_t>> allgather_bytes(OpContext& ctx,
                                                       const std::vector<std::uint8_t>& mine) {
  const int P = ctx.size(), r = ctx.rank();
  const auto own = static_cast<std::int64_t>(mine.size());
  BRAID_CHECK(own <= kMaxPayloadBytes, "allgather_bytes: this rank's ", own,
              " bytes exceed the limit of ", kMaxPayloadBytes);
  std::vector<std::int64_t> counts(P);
  counts[r] = own;
  allgatherv(ctx, Buffer{&counts[r], 1, DType::kInt64}, Buffer{counts.data(), P, DType::kInt64},
             std::vector<std::int64_t>(P, 1));
  for (int peer = 0; peer < P; ++peer) {
    if (counts[peer] < 0 || counts[peer] > kMaxPayloadBytes) {
      throw CommError(str_cat(ctx.op(), ": rank ", peer, " announced ", counts[peer],
                              " bytes (valid: 0 to ", kMaxPayloadBytes, ")"));
    }
  }
  std::int64_t total = 0;
  for (std::int64_t c : counts) total += c;  // at most P * 2^30: no overflow
  if (total > kMaxGatheredBytes) {
    throw CommError(str_cat(ctx.op(), ": the ranks announced ", total, " bytes in total (limit ",
                            kMaxGatheredBytes, ")"));
  }
  std::vector<std::uint8_t> flat(static_cast<std::size_t>(total));
  allgatherv(ctx, Buffer{const_cast<std::uint8_t*>(mine.data()), own, DType::kUInt8},
             Buffer{flat.data(), total, DType::kUInt8}, counts);
  std::vector<std::vector<std::uint8_t>> out(P);
  std::int64_t offset = 0;
  for (int peer = 0; peer < P; ++peer) {
    out[peer].assign(flat.begin() + offset, flat.begin() + offset + counts[peer]);
    offset += counts[peer];
  }
  return out;
}

}  // namespace braid
