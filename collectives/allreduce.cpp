#include "collectives/allreduce.h"

#include "collectives/allreduce_auto.h"
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

AllreduceAuto::AllreduceAuto(const AllreduceOptions& options)
    : model_(options.cost_model), ring_(options.segment_bytes), star_(options.segment_bytes) {}

Allreduce& AllreduceAuto::choose(int ranks, std::size_t bytes, bool native_available) {
  std::string pick = model_.choose(ranks, bytes, native_available);
  if (pick == "star") return star_;
  if (pick == "rhd") return rhd_;
  if (pick == "native") return native_;
  return ring_;
}

void AllreduceAuto::run(OpContext& ctx, Buffer buffer, ReduceOp op) {
  choose(ctx.size(), buffer.bytes(), ctx.transport().native() != nullptr).run(ctx, buffer, op);
}

const std::vector<std::string>& allreduce_names() {
  static const std::vector<std::string> names = {"ring", "star", "rhd", "native", "auto"};
  return names;
}

std::unique_ptr<Allreduce> make_allreduce(const std::string& name,
                                          const AllreduceOptions& options) {
  if (name == "ring") return std::make_unique<AllreduceRing>(options.segment_bytes);
  if (name == "star") return std::make_unique<AllreduceStar>(options.segment_bytes);
  if (name == "rhd") return std::make_unique<AllreduceRhd>();
  if (name == "native") return std::make_unique<AllreduceNative>();
  if (name == "auto") return std::make_unique<AllreduceAuto>(options);
  throw ConfigError(
      str_cat("unknown allreduce algorithm '", name, "' (valid: ring, star, rhd, native, auto)"));
}

}  // namespace braid
