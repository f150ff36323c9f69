#include "collectives/collectives.h"

namespace braid {

void barrier(OpContext& ctx) {
  const int P = ctx.size(), r = ctx.rank();
  char token = 0;
  for (int distance = 1; distance < P; distance *= 2) {
    auto in = ctx.recv(&token, 0, (r + P - distance) % P);
    auto out = ctx.send(&token, 0, (r + distance) % P);
    ctx.wait(*in);
    ctx.wait(*out);
  }
}

}  // namespace braid
