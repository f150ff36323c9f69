// Star allreduce: gather to a root, reduce there, broadcast back (as TPI-LLM uses for tiny
// tensors on high-latency links).
//
// How it works. Rank 0 is the root. The buffer is cut into segments; for each segment the root
// posts receives from all P-1 peers at once (double-buffered, so segment s+1 arrives while s is
// reduced), adds them into its own copy in rank order 1..P-1, and sends the result to every
// peer. A leaf sends each segment and, once that send has completed, receives the result into
// the same place.
//
// Cost: two message latencies on the critical path; the root sends and receives (P-1) * S
// bytes and reduces (P-1) * S, a leaf sends and receives S. One fixed summation order, so the
// result is reproducible and identical on all ranks.
#pragma once

#include "collectives/allreduce.h"

namespace braid {

class AllreduceStar : public Allreduce {
 public:
  explicit AllreduceStar(std::size_t segment_bytes) : segment_bytes_(segment_bytes) {}
  const char* name() const override { return "star"; }
  void run(OpContext& ctx, Buffer buffer, ReduceOp op) override;

 private:
  std::size_t segment_bytes_;
  Scratch scratch_;
};

}  // namespace braid
