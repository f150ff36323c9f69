// Hierarchical allreduce: ranks on a node combine through shared memory, and only each local
// rank's share of the buffer crosses the network.
//
// How it works. With N nodes of L ranks each (SharedMemory::layout()): (1) intra-node
// reduce-scatter through shared memory (AllreduceShm): local rank c holds chunk c (S/L bytes)
// reduced over its node; (2) inter-node allreduce of chunk c among the N ranks with local rank c
// (one per node, a GroupView of the transport in the same operation and tag), by ring or rhd,
// whichever the cost model predicts cheaper for N ranks and S/L bytes; (3) intra-node allgather
// through shared memory.
//
// Cost per rank: network bytes sent = 2 (N-1)/N * S/L (a flat ring sends 2 (P-1)/P * S), in
// 2 (N-1) ring messages or 2 log2 N rhd rounds; shared-memory traffic as AllreduceShm's. With one
// node it is AllreduceShm, with one rank per node the inter-node algorithm alone.
//
// Needs shared memory and the same number of ranks on every node; otherwise run() throws a
// CommError saying which. "auto" picks it only where it applies (hierarchical_applies()).
#pragma once

#include "collectives/allreduce_rhd.h"
#include "collectives/allreduce_ring.h"
#include "collectives/allreduce_shm.h"

namespace braid {

class AllreduceHierarchical : public AllreduceShm {
 public:
  explicit AllreduceHierarchical(const AllreduceOptions& options);
  const char* name() const override { return "hierarchical"; }
  void run(OpContext& ctx, Buffer buffer, ReduceOp op) override;

 private:
  CostModel model_;
  AllreduceRing ring_;
  AllreduceRhd rhd_;
};

// Whether a group with this shared memory (nullptr: none) has more than one node, more than one
// rank per node and the same number on every node: where "auto" prefers hierarchical.
bool hierarchical_applies(const SharedMemory* shm);

}  // namespace braid
