#include "collectives/collectives.h"

#include "collectives/blocks.h"
#include "common/error.h"

namespace braid {

void gather(OpContext& ctx, Buffer input, Buffer output, int root) {
  const int P = ctx.size(), r = ctx.rank();
  BRAID_CHECK(root >= 0 && root < P, "gather root ", root, " of ", P);
  if (r != root) {
    auto request = ctx.send(input, root);
    ctx.wait(*request);
    return;
  }
  BRAID_CHECK(output.count == P * input.count, "gather output has ", output.count,
              " elements, needs ", P * input.count);
  std::vector<RequestPtr> recvs;
  for (int peer = 0; peer < P; ++peer) {
    Buffer block = output.slice(peer * input.count, input.count);
    if (peer == r) {
      copy_block(block, input);
    } else {
      recvs.push_back(ctx.recv(block, peer));
    }
  }
  ctx.wait_all(recvs);
}

}  // namespace braid
