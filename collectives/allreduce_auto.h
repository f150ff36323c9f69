// Auto allreduce: picks ring, star or rhd per call from the alpha-beta cost model
// (collectives/cost_model.h) for the rank count and message size; the pick depends only on
// arguments every rank shares, so all ranks choose the same algorithm.
#pragma once

#include "collectives/allreduce_rhd.h"
#include "collectives/allreduce_ring.h"
#include "collectives/allreduce_star.h"

namespace braid {

class AllreduceAuto : public Allreduce {
 public:
  explicit AllreduceAuto(const AllreduceOptions& options);
  const char* name() const override { return "auto"; }
  void run(OpContext& ctx, Buffer buffer, ReduceOp op) override;
  // The algorithm run() would use.
  Allreduce& choose(int ranks, std::size_t bytes);

 private:
  CostModel model_;
  AllreduceRing ring_;
  AllreduceStar star_;
  AllreduceRhd rhd_;
};

}  // namespace braid
