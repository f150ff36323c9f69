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
  if (!native->allreduce(buffer, op, ctx.deadline(), ctx.aborted())) {
    ctx.fail_wait(str_cat("complete the native allreduce of ", buffer.count, " x ",
                          dtype_name(buffer.dtype)));
  }
}

}  // namespace braid
