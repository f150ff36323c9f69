#include "collectives/allreduce_hierarchical.h"

#include "collectives/group_view.h"
#include "common/error.h"

namespace braid {

AllreduceHierarchical::AllreduceHierarchical(const AllreduceOptions& options)
    : model_(options.cost_model), ring_(options.segment_bytes) {}

void AllreduceHierarchical::run(OpContext& ctx, Buffer buffer, ReduceOp op) {
  if (ctx.size() == 1 || buffer.count == 0) return;
  SharedMemory& shm = shared_memory_of(ctx, "hierarchical");
  const NodeLayout& node = shm.layout();
  if (!node.uniform) {
    throw CommError(
        str_cat("allreduce algorithm 'hierarchical' needs the same number of ranks on "
                "every node, but rank ",
                ctx.rank(), "'s node has ", node.local_size, " of ", ctx.size(), " ranks on ",
                node.nodes, " nodes"));
  }
  if (node.nodes == 1) return run_on_node(ctx, shm, buffer, op, nullptr);
  GroupView across(ctx.transport(), node.index_ranks, node.node);
  OpContext inter(across, ctx.tag(), ctx.deadline(), ctx.op() + " between nodes", ctx.seq(),
                  ctx.aborted());
  run_on_node(ctx, shm, buffer, op, [&](Buffer chunk) {
    // Every rank of `across` has local rank c, so the same chunk size and the same pick.
    const bool rhd = model_.predict("rhd", node.nodes, chunk.bytes()) <
                     model_.predict("ring", node.nodes, chunk.bytes());
    (rhd ? static_cast<Allreduce&>(rhd_) : ring_).run(inter, chunk, op);
  });
}

bool hierarchical_applies(const SharedMemory* shm) {
  if (!shm) return false;
  const NodeLayout& node = shm->layout();
  return node.nodes > 1 && node.local_size > 1 && node.uniform;
}

}  // namespace braid
