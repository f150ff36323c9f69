#include "collectives/allreduce_native.h"

#include "common/error.h"

namespace braid {

void AllreduceNative::run(OpContext& ctx, Buffer buffer, ReduceOp op) {
  NativeCollectives* native = ctx.transport().native();
  if (!native) {
    throw CommError(
        str_cat("allreduce algorithm 'native' needs a transport with a native "
                "collective (MPI); this one is '",
                ctx.transport().name(), "'"));
  }
  if (buffer.count == 0 || ctx.size() == 1) return;
  native->allreduce(buffer, op, ctx.deadline());
}

}  // namespace braid
