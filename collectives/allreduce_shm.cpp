#include "collectives/allreduce_shm.h"

#include <algorithm>
#include <cstring>

#include "collectives/blocks.h"
#include "collectives/reduce.h"
#include "common/error.h"

namespace braid {

namespace {

// Small enough that a block of every source and the result stay in L1/L2 while reduced.
constexpr std::size_t kBlockBytes = 32 * 1024;

void node_barrier(OpContext& ctx, SharedMemory& shm, const char* after) {
  int late = -1;
  if (shm.barrier(ctx.deadline(), ctx.aborted(), &late)) return;
  ctx.fail_wait(str_cat("pass the shared-memory barrier after ", after, " (local rank ", late,
                        ", rank ", shm.layout().node_ranks[late], ", had not arrived)"));
}

// dst = sources[0] (op) sources[1] (op) ..., block by block; dst may alias one of the sources.
void reduce_sources(Buffer dst, const std::vector<const char*>& sources, ReduceOp op,
                    char* scratch) {
  const std::size_t elem = dtype_size(dst.dtype);
  const auto block = static_cast<std::int64_t>(kBlockBytes / elem);
  for (std::int64_t at = 0; at < dst.count; at += block) {
    Buffer part{scratch, std::min(block, dst.count - at), dst.dtype};
    const std::size_t offset = static_cast<std::size_t>(at) * elem;
    std::memcpy(scratch, sources[0] + offset, part.bytes());
    for (std::size_t i = 1; i < sources.size(); ++i) reduce_into(part, sources[i] + offset, op);
    std::memcpy(dst.bytes_at(at), scratch, part.bytes());
  }
}

}  // namespace

SharedMemory& AllreduceShm::shared_memory_of(OpContext& ctx, const char* algorithm) {
  SharedMemory* shm = ctx.transport().shared_memory();
  if (!shm) {
    throw CommError(str_cat("allreduce algorithm '", algorithm,
                            "' needs a transport with shared memory (MPI or threads); this one "
                            "is '",
                            ctx.transport().name(), "'"));
  }
  return *shm;
}

void AllreduceShm::run(OpContext& ctx, Buffer buffer, ReduceOp op) {
  if (ctx.size() == 1 || buffer.count == 0) return;
  SharedMemory& shm = shared_memory_of(ctx, "shm");
  if (shm.layout().nodes > 1) {
    throw CommError(str_cat("allreduce algorithm 'shm' needs all ranks on one node, but rank ",
                            ctx.rank(), " sees ", shm.layout().nodes,
                            " nodes; use 'hierarchical'"));
  }
  run_on_node(ctx, shm, buffer, op, [](Buffer) {});
}

void AllreduceShm::run_on_node(OpContext& ctx, SharedMemory& shm, Buffer buffer, ReduceOp op,
                               const std::function<void(Buffer)>& between) {
  const NodeLayout& node = shm.layout();
  const int L = node.local_size, me = node.local_rank;
  if (L == 1) return between(buffer);
  const std::int64_t n = buffer.count;

  if (!shm.prepare(ctx.deadline(), ctx.aborted())) {
    ctx.fail_wait("meet the other ranks of the node to set up shared memory");
  }
  // Registered only if every local rank passes the same region at the same offset; all ranks
  // decide from the same published words, so they agree.
  std::size_t offset = 0;
  const SharedRegion* region = shm.find(buffer.data, buffer.bytes(), &offset);
  shm.publish(region ? region->id : 0, offset);
  node_barrier(ctx, shm, "publishing the buffer's place");
  bool registered = shm.published(0, 0) != 0;
  for (int i = 1; i < L; ++i) {
    registered = registered && shm.published(i, 0) == shm.published(0, 0) &&
                 shm.published(i, 1) == shm.published(0, 1);
  }
  std::vector<char*> copies(L);
  if (registered) {
    for (int i = 0; i < L; ++i) copies[i] = region->base[i] + offset;
  } else {
    const SharedRegion& staging = shm.staging(buffer.bytes());
    std::memcpy(staging.base[me], buffer.data, buffer.bytes());
    node_barrier(ctx, shm, "copying the buffer in");
    copies = staging.base;
  }
  auto chunk = [&](void* base, int c) {
    return Buffer{base, n, buffer.dtype}.slice(split_offset(n, L, c), split_count(n, L, c));
  };

  Buffer mine = chunk(copies[me], me);
  std::vector<const char*> sources(L);
  for (int i = 0; i < L; ++i) sources[i] = static_cast<const char*>(chunk(copies[i], me).data);
  reduce_sources(mine, sources, op, scratch_.get(kBlockBytes));
  shm.count_read((L - 1) * mine.bytes());
  between(mine);
  node_barrier(ctx, shm, "the reduce-scatter");

  for (int c = 0; c < L; ++c) {
    copy_block(chunk(buffer.data, c), chunk(copies[c], c));
    if (c != me) shm.count_read(chunk(copies[c], c).bytes());
  }
  // Peers may not overwrite their copies (the next operation) before everyone has read them.
  node_barrier(ctx, shm, "the allgather");
}

}  // namespace braid
