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
// Progress is shown to peers per step: a peer copies a reduced step soon after it was written,
// while it is still in this rank's cache, so most of the allgather reads cache instead of DRAM.
// Big enough that flag traffic is negligible, small enough to stay in L2 until the peer copies.
constexpr std::size_t kStepBytes = 256 * 1024;

void node_barrier(OpContext& ctx, SharedMemory& shm, const char* after) {
  int late = -1;
  const auto waiting = [&](int local) { ctx.waiting_for(shm.layout().node_ranks[local]); };
  if (shm.barrier(ctx.deadline(), ctx.aborted(), &late, waiting)) return;
  ctx.fail_wait(str_cat("pass the shared-memory barrier after ", after, " (local rank ", late,
                        ", rank ", shm.layout().node_ranks[late], ", had not arrived)"));
}

// x (op) y == y (op) x bitwise: IEEE sums are commutative, but std::max/min pick an operand on
// ties (+0 vs -0) and NaN, so their order matters.
bool commutes(ReduceOp op) { return op == ReduceOp::kSum || op == ReduceOp::kAvg; }

// dst = sources[0] (op) sources[1] (op) ..., each source read from `skip` bytes on, block by
// block, in local rank order; dst may alias one of the sources there. When it aliases the first
// (or, for an op that commutes, the second) it is reduced in place; otherwise through
// `scratch`, so the order never changes the result.
void reduce_sources(Buffer dst, const std::vector<const char*>& sources, std::size_t skip,
                    ReduceOp op, char* scratch) {
  const std::size_t elem = dtype_size(dst.dtype);
  const char* out = static_cast<const char*>(dst.data) - skip;  // compared with sources
  const bool in_place = out == sources[0] || (out == sources[1] && commutes(op));
  const auto block = static_cast<std::int64_t>(kBlockBytes / elem);
  for (std::int64_t at = 0; at < dst.count; at += block) {
    const std::size_t offset = skip + static_cast<std::size_t>(at) * elem;
    const std::int64_t count = std::min(block, dst.count - at);
    Buffer part{in_place ? dst.bytes_at(at) : scratch, count, dst.dtype};
    if (!in_place) std::memcpy(scratch, sources[0] + offset, part.bytes());
    for (std::size_t i = in_place ? 0 : 1; i < sources.size(); ++i) {
      if (!in_place || sources[i] != out) reduce_into(part, sources[i] + offset, op);
    }
    if (!in_place) std::memcpy(dst.bytes_at(at), scratch, part.bytes());
  }
}

// Every local rank published (region, offset, count, dtype) before the barrier. Counts or
// dtypes that differ would make the ranks slice each other's memory differently: every rank
// sees the same published words, so every rank throws the same error here, before any copy.
void check_same_buffer(OpContext& ctx, SharedMemory& shm, Buffer buffer) {
  const NodeLayout& node = shm.layout();
  for (int i = 0; i < node.local_size; ++i) {
    const std::uint64_t count = shm.published(i, 2), dtype = shm.published(i, 3);
    if (count == static_cast<std::uint64_t>(buffer.count) &&
        dtype == static_cast<std::uint64_t>(buffer.dtype)) {
      continue;
    }
    const std::string theirs = dtype <= static_cast<std::uint64_t>(DType::kUInt8)
                                   ? str_cat(count, " x ", dtype_name(static_cast<DType>(dtype)))
                                   : str_cat(count, " elements of unknown dtype ", dtype);
    throw CommError(str_cat("shared-memory allreduce: rank ", node.node_ranks[i], " passed ",
                            theirs, " but rank ", ctx.rank(), " passed ", buffer.count, " x ",
                            dtype_name(buffer.dtype),
                            "; every rank must pass the same count and dtype"));
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
  run_on_node(ctx, shm, buffer, op, nullptr);
}

void AllreduceShm::run_on_node(OpContext& ctx, SharedMemory& shm, Buffer buffer, ReduceOp op,
                               const std::function<void(Buffer)>& between) {
  const NodeLayout& node = shm.layout();
  const int L = node.local_size, me = node.local_rank;
  if (L == 1) {
    if (between) between(buffer);
    return;
  }
  const std::int64_t n = buffer.count;

  if (!shm.prepare(ctx.deadline(), ctx.aborted())) {
    ctx.fail_wait("meet the other ranks of the node to set up shared memory");
  }
  // Registered only if every local rank passes the same region at the same offset; all ranks
  // decide from the same published words, so they agree.
  std::size_t offset = 0;
  const SharedRegion* region = shm.find(buffer.data, buffer.bytes(), &offset);
  shm.publish({region ? region->id : 0, offset, static_cast<std::uint64_t>(n),
               static_cast<std::uint64_t>(buffer.dtype)});
  node_barrier(ctx, shm, "publishing the buffer's place");
  check_same_buffer(ctx, shm, buffer);
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
  // Steps of kStepBytes within a chunk: the unit of progress peers see.
  const auto step =
      static_cast<std::int64_t>(std::max<std::size_t>(kStepBytes / dtype_size(buffer.dtype), 1));
  auto steps_of = [&](int c) { return (split_count(n, L, c) + step - 1) / step; };
  auto part = [&](Buffer whole, std::int64_t s) {
    return whole.slice(s * step, std::min(step, whole.count - s * step));
  };

  // Allgather by reading, as far as each peer has progressed (to the end when `wait`): copy the
  // reduced steps of chunk c from local rank c's memory into the buffer. A step of a peer's
  // chunk is final once the peer shows it, and overwriting our own copy there is safe then: the
  // peer has read it.
  std::vector<std::int64_t> copied(L, 0);
  auto gather = [&](bool wait) {
    for (int c = 0; c < L; ++c) {
      const std::int64_t steps = steps_of(c);
      while (copied[c] < steps) {
        // A peer's counter is capped at the steps of its chunk: whatever it shows, no copy
        // reaches past the chunk.
        const auto shown = [&] {
          return static_cast<std::int64_t>(
              std::min<std::uint64_t>(shm.progress(c), static_cast<std::uint64_t>(steps)));
        };
        std::int64_t ready = shown();
        if (ready <= copied[c]) {
          if (!wait) break;
          ctx.waiting_for(node.node_ranks[c]);
          if (!poll_until([&] { return (ready = shown()) > copied[c]; }, ctx.deadline(),
                          ctx.aborted())) {
            ctx.fail_wait(str_cat("read the reduced chunk of local rank ", c, " (rank ",
                                  node.node_ranks[c], "; it showed ", copied[c], " of ", steps,
                                  " steps)"));
          }
        }
        for (; copied[c] < ready; ++copied[c]) {
          const Buffer from = part(chunk(copies[c], c), copied[c]);
          const Buffer to = part(chunk(buffer.data, c), copied[c]);
          if (to.data != from.data) copy_block(to, from);
          if (c != me) shm.count_read(from.bytes());
        }
      }
    }
  };

  // Reduce-scatter by reading: this rank reduces chunk `me` from every local rank's copy, step
  // by step, showing each step as done and copying what peers have shown meanwhile. A step
  // `between` nodes needs the whole chunk first, so then progress is shown once, at the end.
  Buffer mine = chunk(copies[me], me);
  std::vector<const char*> sources(L);
  for (int i = 0; i < L; ++i) sources[i] = static_cast<const char*>(chunk(copies[i], me).data);
  char* scratch = scratch_.get(kBlockBytes);
  const std::int64_t my_steps = steps_of(me);
  for (std::int64_t s = 0; s < my_steps; ++s) {
    const std::size_t skip = static_cast<std::size_t>(s * step) * dtype_size(buffer.dtype);
    reduce_sources(part(mine, s), sources, skip, op, scratch);
    if (between) continue;
    shm.advance(static_cast<std::uint64_t>(s + 1));
    gather(false);
  }
  shm.count_read((L - 1) * mine.bytes());
  if (between) {
    between(mine);
    shm.advance(static_cast<std::uint64_t>(my_steps));
  }
  gather(true);
  // Peers may not overwrite their copies (the next operation) before everyone has read them.
  node_barrier(ctx, shm, "the allgather");
}

}  // namespace braid
