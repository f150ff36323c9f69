// Recursive halving-doubling allreduce (Rabenseifner), for any rank count.
//
// How it works. Let q be the largest power of two <= P and e = P - q. Fold: among the first 2e
// ranks, each even rank sends its whole buffer to the odd rank above it, which reduces it and
// stands for both; the even rank sits out. The q remaining ranks (new rank = r/2 for the odd
// folded ranks, r - e above) split the buffer into q blocks and run a reduce-scatter by
// recursive halving: in round i the partner is new_rank XOR (q >> (i+1)); each keeps the half
// of its current block range on its side, sends the other half and reduces the half it keeps.
// After log2(q) rounds each owns one fully reduced block; an allgather by recursive doubling
// retraces the rounds in reverse, doubling the owned range each time. Finally each odd folded
// rank sends the result to its even partner.
//
// Cost per rank: 2 log2(q) messages (+2 when P is not a power of two); bytes sent
// 2 (q-1)/q * S (+S when folded); reduction (q-1)/q * S (+S). Latency-optimal order of
// growth, bandwidth within a factor of ring; the pick for small and medium messages.
#pragma once

#include "collectives/allreduce.h"

namespace braid {

class AllreduceRhd : public Allreduce {
 public:
  const char* name() const override { return "rhd"; }
  void run(OpContext& ctx, Buffer buffer, ReduceOp op) override;

 private:
  Scratch scratch_;
};

}  // namespace braid
