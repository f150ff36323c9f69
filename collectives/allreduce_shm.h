// Shared-memory allreduce: the ranks of one node combine by reading each other's memory
// (collectives/shared_memory.h) instead of sending messages.
//
// How it works. The buffer is split into L chunks, L = ranks on the node (chunk c holds elements
// [split_offset(n, L, c), +split_count(n, L, c))). Every local rank's copy of the buffer lies in
// shared memory: in place when the buffer is registered (allocated from
// SharedMemory::allocate() at the same offset on every local rank; the fast path), else copied
// into a staging region first. Reduce-scatter by reading: local rank c computes chunk c as
// x_0 (op) x_1 (op) ... (op) x_{L-1} from every peer's copy, in local rank order, block by block,
// and writes it into its own copy. Allgather by reading: every rank copies chunk c from local
// rank c's copy. The phases overlap: chunks are reduced in steps, each step is published on a
// progress flag as soon as it is done, and ranks copy peers' published steps between their own,
// while the step is still in the owner's cache. Node barriers open and close the operation.
//
// Cost per rank (registered): no messages; memory traffic read S + write S/L (reduce), read and
// write (L-1)/L S (gather, much of it from cache); unregistered adds a copy in (read S, write S).
// Barriers: 2, or 3 unregistered. The reduction order is the local rank order, the same as
// star's, so the result is bitwise equal to star's and identical on every rank.
//
// "shm" needs all ranks on one node and a transport with shared memory; otherwise run() throws a
// CommError saying so. AllreduceHierarchical reuses the phases with an inter-node step between.
#pragma once

#include <functional>

#include "collectives/allreduce.h"
#include "collectives/shared_memory.h"

namespace braid {

class AllreduceShm : public Allreduce {
 public:
  const char* name() const override { return "shm"; }
  void run(OpContext& ctx, Buffer buffer, ReduceOp op) override;

 protected:
  // Intra-node reduce-scatter, then `between(chunk)` on this local rank's reduced chunk (in
  // shared memory, where peers will read it), then intra-node allgather.
  void run_on_node(OpContext& ctx, SharedMemory& shm, Buffer buffer, ReduceOp op,
                   const std::function<void(Buffer)>& between);
  // The transport's shared memory; CommError naming the transport when it has none.
  static SharedMemory& shared_memory_of(OpContext& ctx, const char* algorithm);

 private:
  Scratch scratch_;
};

}  // namespace braid
