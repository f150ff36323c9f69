#include "collectives/allreduce_native.h"

#include "common/error.h"

namespace braid {

namespace {

// A library collective given different counts on different ranks is undefined behaviour (it
// writes past the smaller buffers), and nothing in it reports the mismatch. One small allreduce
// first gives every rank the largest and smallest count and dtype, so every rank fails with the
// same message before the real one starts. It costs one latency of a 32-byte allreduce.
void check_same_shape(OpContext& ctx, NativeCollectives& native, Buffer buffer) {
  std::int64_t extremes[4] = {buffer.count, -buffer.count, static_cast<std::int64_t>(buffer.dtype),
                              -static_cast<std::int64_t>(buffer.dtype)};
  if (!native.allreduce(Buffer{extremes, 4, DType::kInt64}, ReduceOp::kMax, ctx.deadline(),
                        ctx.aborted())) {
    ctx.fail_wait("agree on the native allreduce's count and dtype");
  }
  const std::int64_t largest = extremes[0], smallest = -extremes[1];
  if (largest == smallest && extremes[2] == -extremes[3]) return;
  auto name = [](std::int64_t dtype) {
    return dtype >= 0 && dtype <= static_cast<std::int64_t>(DType::kUInt8)
               ? std::string(dtype_name(static_cast<DType>(dtype)))
               : str_cat("dtype ", dtype);
  };
  throw CommError(str_cat("native allreduce: the ranks passed different buffers (counts from ",
                          smallest, " to ", largest, ", dtypes ", name(-extremes[3]), " to ",
                          name(extremes[2]), "); rank ", ctx.rank(), " passed ", buffer.count,
                          " x ", dtype_name(buffer.dtype),
                          ". Every rank must pass the same count and dtype"));
}

}  // namespace

void AllreduceNative::run(OpContext& ctx, Buffer buffer, ReduceOp op) {
  NativeCollectives* native = ctx.transport().native();
  if (!native) {
    throw CommError(
        str_cat("allreduce algorithm 'native' needs a transport with a native "
                "collective (MPI); this one is '",
                ctx.transport().name(), "'"));
  }
  if (ctx.size() == 1) return;
  check_same_shape(ctx, *native, buffer);
  if (buffer.count == 0) return;
  if (!native->allreduce(buffer, op, ctx.deadline(), ctx.aborted())) {
    ctx.fail_wait(str_cat("complete the native allreduce of ", buffer.count, " x ",
                          dtype_name(buffer.dtype)));
  }
}

}  // namespace braid
