#include "collectives/collectives.h"

#include "common/error.h"

namespace braid {

void broadcast(OpContext& ctx, Buffer buffer, int root) {
  const int P = ctx.size(), r = ctx.rank();
  BRAID_CHECK(root >= 0 && root < P, "broadcast root ", root, " of ", P);
  const int me = (r - root + P) % P;
  int mask = 1;
  while (mask < P) {
    if (me & mask) {
      auto request = ctx.recv(buffer, (me - mask + root) % P);
      ctx.wait(*request);
      break;
    }
    mask <<= 1;
  }
  std::vector<RequestPtr> sends;
  for (mask >>= 1; mask > 0; mask >>= 1) {
    if (me + mask < P) sends.push_back(ctx.send(buffer, (me + mask + root) % P));
  }
  ctx.wait_all(sends);
}

}  // namespace braid
