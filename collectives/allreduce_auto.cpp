#include "collectives/allreduce_auto.h"

namespace braid {

AllreduceAuto::AllreduceAuto(const AllreduceOptions& options)
    : model_(options.cost_model),
      ring_(options.segment_bytes),
      star_(options.segment_bytes),
      hierarchical_(options) {}

Allreduce& AllreduceAuto::choose(int ranks, std::size_t bytes, bool native_available) {
  std::string pick = model_.choose(ranks, bytes, native_available);
  if (pick == "star") return star_;
  if (pick == "rhd") return rhd_;
  if (pick == "native") return native_;
  return ring_;
}

void AllreduceAuto::run(OpContext& ctx, Buffer buffer, ReduceOp op) {
  if (ctx.size() > 1 && hierarchical_applies(ctx.transport().shared_memory())) {
    return hierarchical_.run(ctx, buffer, op);
  }
  choose(ctx.size(), buffer.bytes(), ctx.transport().native() != nullptr).run(ctx, buffer, op);
}

}  // namespace braid
