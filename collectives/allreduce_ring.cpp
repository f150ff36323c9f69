#include "collectives/allreduce_ring.h"

#include <algorithm>

#include "collectives/reduce.h"

namespace braid {

void AllreduceRing::run(OpContext& ctx, Buffer buffer, ReduceOp op) {
  const int P = ctx.size(), r = ctx.rank();
  const std::int64_t n = buffer.count;
  if (P == 1 || n == 0) return;
  const std::size_t elem = dtype_size(buffer.dtype);
  const int right = (r + 1) % P, left = (r + P - 1) % P;
  const int steps = 2 * (P - 1);

  const std::int64_t max_chunk = split_count(n, P, 0);
  const std::int64_t segments = std::max<std::int64_t>(
      1, static_cast<std::int64_t>((max_chunk * elem + segment_bytes_ - 1) / segment_bytes_));
  const std::int64_t max_segment = split_count(max_chunk, segments, 0);

  auto chunk_of = [&](int step_offset) { return ((r - step_offset) % P + P) % P; };
  auto segment = [&](int chunk, std::int64_t s) {
    std::int64_t count = split_count(n, P, chunk);
    return buffer.slice(split_offset(n, P, chunk) + split_offset(count, segments, s),
                        split_count(count, segments, s));
  };
  char* scratch = scratch_.get(2 * segments * max_segment * elem, buffer.device);
  auto scratch_segment = [&](int step, std::int64_t s) {
    return scratch + ((step % 2) * segments + s) * max_segment * elem;
  };

  std::vector<std::vector<RequestPtr>> sends(steps);
  std::vector<RequestPtr> recvs[2];
  auto post_recvs = [&](int step) {
    const int chunk = chunk_of(step + 1);
    auto& slot = recvs[step % 2];
    slot.clear();
    if (step >= P - 1) {
      // Allgather receives land in the buffer itself: the region must no longer be read by the
      // send that carried this chunk P-1 steps earlier.
      int earlier = step + 1 - P;
      if (earlier >= 0) ctx.wait_all(sends[earlier]);
    }
    for (std::int64_t s = 0; s < segments; ++s) {
      Buffer target = segment(chunk, s);
      if (step < P - 1) target.data = scratch_segment(step, s);
      slot.push_back(ctx.recv(target, left));
    }
  };

  for (std::int64_t s = 0; s < segments; ++s) sends[0].push_back(ctx.send(segment(r, s), right));
  post_recvs(0);
  for (int step = 0; step < steps; ++step) {
    if (step + 1 < steps) post_recvs(step + 1);
    const int chunk = chunk_of(step + 1);
    for (std::int64_t s = 0; s < segments; ++s) {
      ctx.wait(*recvs[step % 2][s]);
      Buffer mine = segment(chunk, s);
      if (step < P - 1) reduce_into(mine, scratch_segment(step, s), op);
      if (step + 1 < steps) sends[step + 1].push_back(ctx.send(mine, right));
    }
  }
  for (auto& step_sends : sends) ctx.wait_all(step_sends);
}

}  // namespace braid
