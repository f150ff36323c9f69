#include "collectives/collectives.h"

#include <algorithm>

#include "common/error.h"

namespace braid {

std::vector<std::vector<std::uint8_t>> alltoall_bytes(
    OpContext& ctx, const std::vector<std::vector<std::uint8_t>>& to_each) {
  const int P = ctx.size();
  BRAID_CHECK(static_cast<int>(to_each.size()) == P, "alltoall_bytes needs ", P, " payloads, got ",
              to_each.size());
  std::vector<std::int64_t> send_counts(P), recv_counts(P);
  std::int64_t send_total = 0;
  for (int peer = 0; peer < P; ++peer) {
    send_counts[peer] = static_cast<std::int64_t>(to_each[peer].size());
    BRAID_CHECK(send_counts[peer] <= kMaxPayloadBytes, "alltoall_bytes: ", send_counts[peer],
                " bytes for rank ", peer, " exceed the limit of ", kMaxPayloadBytes);
    send_total += send_counts[peer];
  }
  const std::vector<std::int64_t> ones(P, 1);
  alltoallv(ctx, Buffer{send_counts.data(), P, DType::kInt64}, ones,
            Buffer{recv_counts.data(), P, DType::kInt64}, ones);
  std::int64_t recv_total = 0;
  for (int peer = 0; peer < P; ++peer) {
    if (recv_counts[peer] < 0 || recv_counts[peer] > kMaxPayloadBytes) {
      throw CommError(str_cat(ctx.op(), ": rank ", peer, " announced ", recv_counts[peer],
                              " bytes (valid: 0 to ", kMaxPayloadBytes, ")"));
    }
    recv_total += recv_counts[peer];  // at most P * 2^30: no overflow
  }
  std::vector<std::uint8_t> send(static_cast<std::size_t>(send_total));
  std::int64_t offset = 0;
  for (const auto& bytes : to_each) {
    std::copy(bytes.begin(), bytes.end(), send.begin() + offset);
    offset += static_cast<std::int64_t>(bytes.size());
  }
  std::vector<std::uint8_t> recv(static_cast<std::size_t>(recv_total));
  alltoallv(ctx, Buffer{send.data(), send_total, DType::kUInt8}, send_counts,
            Buffer{recv.data(), recv_total, DType::kUInt8}, recv_counts);
  std::vector<std::vector<std::uint8_t>> out(P);
  offset = 0;
  for (int peer = 0; peer < P; ++peer) {
    out[peer].assign(recv.begin() + offset, recv.begin() + offset + recv_counts[peer]);
    offset += recv_counts[peer];
  }
  return out;
}

}  // namespace braid
