#include "collectives/allreduce_rhd.h"

#include "collectives/reduce.h"

namespace braid {

void AllreduceRhd::run(OpContext& ctx, Buffer buffer, ReduceOp op) {
  const int P = ctx.size(), r = ctx.rank();
  const std::int64_t n = buffer.count;
  if (P == 1 || n == 0) return;
  int q = 1;
  while (q * 2 <= P) q *= 2;
  const int extra = P - q;
  char* scratch = scratch_.get(buffer.bytes(), buffer.device);

  // Fold the extra ranks into their odd partners.
  int new_rank;
  if (r < 2 * extra) {
    if (r % 2 == 0) {
      auto s = ctx.send(buffer, r + 1);
      ctx.wait(*s);
      new_rank = -1;
    } else {
      auto rq = ctx.recv(scratch, buffer.bytes(), r - 1);
      ctx.wait(*rq);
      reduce_into(buffer, scratch, op);
      new_rank = r / 2;
    }
  } else {
    new_rank = r - extra;
  }

  if (new_rank >= 0) {
    auto real_rank = [&](int nr) { return nr < extra ? 2 * nr + 1 : nr + extra; };
    auto blocks = [&](int lo, int hi) {
      std::int64_t begin = split_offset(n, q, lo);
      return buffer.slice(begin, split_offset(n, q, hi) - begin);
    };
    int lo = 0, hi = q;
    for (int mask = q / 2; mask > 0; mask /= 2) {
      const int partner_new = new_rank ^ mask;
      const int mid = (lo + hi) / 2;
      const bool lower = new_rank < partner_new;
      Buffer keep = lower ? blocks(lo, mid) : blocks(mid, hi);
      Buffer give = lower ? blocks(mid, hi) : blocks(lo, mid);
      Buffer incoming{scratch, keep.count, buffer.dtype, buffer.device};
      ctx.sendrecv(give, real_rank(partner_new), incoming, real_rank(partner_new));
      reduce_into(keep, scratch, op);
      if (lower)
        hi = mid;
      else
        lo = mid;
    }
    for (int mask = 1; mask < q; mask *= 2) {
      const int partner_new = new_rank ^ mask;
      const int len = hi - lo;
      const bool lower = (new_rank & mask) == 0;
      Buffer theirs = lower ? blocks(hi, hi + len) : blocks(lo - len, lo);
      ctx.sendrecv(blocks(lo, hi), real_rank(partner_new), theirs, real_rank(partner_new));
      if (lower)
        hi += len;
      else
        lo -= len;
    }
  }

  if (r < 2 * extra) {
    if (r % 2 == 1) {
      auto s = ctx.send(buffer, r - 1);
      ctx.wait(*s);
    } else {
      auto rq = ctx.recv(buffer, r + 1);
      ctx.wait(*rq);
    }
  }
}

}  // namespace braid
