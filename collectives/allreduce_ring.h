// Ring allreduce: reduce-scatter then allgather around a logical ring, segmented and
// pipelined.
//
// How it works. The buffer is split into P chunks (balanced; chunk c holds elements
// [split_offset(n, P, c), +split_count(n, P, c))). Rank r sends to r+1 and receives from r-1.
// In step k (0 <= k < 2(P-1)) rank r receives chunk (r-k-1) mod P: during the first P-1 steps
// (reduce-scatter) it adds the received chunk into its own copy, during the last P-1 steps
// (allgather) it overwrites its copy with the fully reduced chunk. Each chunk is cut into the
// same number of segments on every rank; a segment is forwarded to r+1 as soon as it has been
// reduced, so receiving, reducing and sending overlap and the working set stays in cache.
// Step k+1's receives are posted before step k's segments are processed (double-buffered
// scratch).
//
// Cost per rank: 2(P-1) steps of `segments` messages; bytes sent = bytes received =
// 2(P-1)/P * S; reduction (P-1)/P * S. Each chunk is reduced exactly once and then copied, so
// all ranks hold bitwise identical results.
#pragma once

#include "collectives/allreduce.h"

namespace braid {

class AllreduceRing : public Allreduce {
 public:
  explicit AllreduceRing(std::size_t segment_bytes) : segment_bytes_(segment_bytes) {}
  const char* name() const override { return "ring"; }
  void run(OpContext& ctx, Buffer buffer, ReduceOp op) override;

 private:
  std::size_t segment_bytes_;
  Scratch scratch_;
};

}  // namespace braid
