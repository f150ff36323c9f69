#include "collectives/collectives.h"

#include "collectives/blocks.h"
#include "collectives/reduce.h"
#include "common/error.h"

namespace braid {

void reduce_scatter(OpContext& ctx, Buffer input, Buffer output, ReduceOp op, Scratch& scratch) {
  const int P = ctx.size(), r = ctx.rank();
  const std::int64_t n = input.count;
  BRAID_CHECK(output.count == split_count(n, P, r) && output.dtype == input.dtype,
              "reduce_scatter output has ", output.count, " elements, chunk ", r, " of ", n,
              " has ", split_count(n, P, r));
  const std::size_t elem = dtype_size(input.dtype);
  char* memory = scratch.get((n + split_count(n, P, 0)) * elem, input.device);
  Buffer work{memory, n, input.dtype, input.device};
  copy_block(work, input);
  char* incoming = memory + n * elem;
  auto chunk = [&](int c) {
    c = ((c % P) + P) % P;
    return work.slice(split_offset(n, P, c), split_count(n, P, c));
  };
  for (int k = 0; k < P - 1; ++k) {
    Buffer mine = chunk(r - k - 2);
    ctx.sendrecv(chunk(r - k - 1), (r + 1) % P,
                 Buffer{incoming, mine.count, input.dtype, input.device}, (r + P - 1) % P);
    reduce_into(mine, incoming, op);
  }
  copy_block(output, chunk(r));
}

}  // namespace braid
