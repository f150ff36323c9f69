#include "collectives/allreduce_star.h"

#include <algorithm>

#include "collectives/reduce.h"

namespace braid {

void AllreduceStar::run(OpContext& ctx, Buffer buffer, ReduceOp op) {
  constexpr int kRoot = 0;
  const int P = ctx.size(), r = ctx.rank();
  const std::int64_t n = buffer.count;
  if (P == 1 || n == 0) return;
  const std::size_t elem = dtype_size(buffer.dtype);
  const std::int64_t segments = std::max<std::int64_t>(
      1, static_cast<std::int64_t>((buffer.bytes() + segment_bytes_ - 1) / segment_bytes_));
  auto segment = [&](std::int64_t s) {
    return buffer.slice(split_offset(n, segments, s), split_count(n, segments, s));
  };

  if (r != kRoot) {
    std::vector<RequestPtr> sends, recvs;
    for (std::int64_t s = 0; s < segments; ++s) sends.push_back(ctx.send(segment(s), kRoot));
    for (std::int64_t s = 0; s < segments; ++s) {
      ctx.wait(*sends[s]);
      recvs.push_back(ctx.recv(segment(s), kRoot));
    }
    ctx.wait_all(recvs);
    return;
  }

  const std::int64_t max_segment = split_count(n, segments, 0);
  char* scratch = scratch_.get(2 * (P - 1) * max_segment * elem, buffer.device);
  auto from_peer = [&](std::int64_t s, int peer) {
    return scratch + ((s % 2) * (P - 1) + (peer - 1)) * max_segment * elem;
  };
  std::vector<RequestPtr> recvs[2], sends;
  auto post = [&](std::int64_t s) {
    Buffer seg = segment(s);
    for (int peer = 1; peer < P; ++peer) {
      recvs[s % 2].push_back(ctx.recv(from_peer(s, peer), seg.bytes(), peer));
    }
  };
  post(0);
  for (std::int64_t s = 0; s < segments; ++s) {
    if (s + 1 < segments) post(s + 1);
    Buffer seg = segment(s);
    // Reduce in rank order as each arrives in turn: one fixed summation order.
    for (int peer = 1; peer < P; ++peer) {
      ctx.wait(*recvs[s % 2][peer - 1]);
      reduce_into(seg, from_peer(s, peer), op);
    }
    recvs[s % 2].clear();
    for (int peer = 1; peer < P; ++peer) sends.push_back(ctx.send(seg, peer));
  }
  ctx.wait_all(sends);
}

}  // namespace braid
