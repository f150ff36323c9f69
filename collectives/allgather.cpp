#include "collectives/collectives.h"

#include "collectives/blocks.h"
#include "common/error.h"

namespace braid {

void allgatherv(OpContext& ctx, Buffer input, Buffer output,
                const std::vector<std::int64_t>& counts) {
  const int P = ctx.size(), r = ctx.rank();
  BRAID_CHECK(static_cast<int>(counts.size()) == P, "allgatherv needs ", P, " counts, got ",
              counts.size());
  BRAID_CHECK(counts[r] == input.count, "allgatherv: counts[", r, "] = ", counts[r],
              " but this rank contributes ", input.count);
  auto offsets = offsets_of(counts);
  BRAID_CHECK(output.count == offsets[P], "allgatherv output has ", output.count,
              " elements, counts add up to ", offsets[P]);
  auto block = [&](int b) {
    b = ((b % P) + P) % P;
    return output.slice(offsets[b], counts[b]);
  };
  copy_block(block(r), input);
  for (int k = 0; k < P - 1; ++k) {
    ctx.sendrecv(block(r - k), (r + 1) % P, block(r - k - 1), (r + P - 1) % P);
  }
}

}  // namespace braid
