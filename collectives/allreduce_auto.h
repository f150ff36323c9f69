// Auto allreduce: picks an algorithm per call from the cost model (collectives/cost_model.h) for
// the rank count and message size: the measured winner when `braid bench allreduce --calibrate`
// measured this rank count (native included), else the cheapest of ring, star and rhd by the
// alpha-beta formulas. Where ranks share nodes (several nodes of several ranks each,
// hierarchical_applies()) it is always hierarchical. The pick depends only on arguments every rank
// shares (and the same calibration file), so all ranks choose the same algorithm.
#pragma once

#include "collectives/allreduce_hierarchical.h"
#include "collectives/allreduce_native.h"
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
  Allreduce& choose(int ranks, std::size_t bytes, bool native_available);

 private:
  CostModel model_;
  AllreduceRing ring_;
  AllreduceStar star_;
  AllreduceRhd rhd_;
  AllreduceNative native_;
  AllreduceHierarchical hierarchical_;
};

}  // namespace braid
