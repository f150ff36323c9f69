// Native allreduce: the transport's own library call (MPI_Allreduce over MpiTransport). It is
// the baseline braid's algorithms are measured against, and only exists where the transport
// has the capability; over other transports run() throws a CommError saying so.
#pragma once

#include "collectives/allreduce.h"

namespace braid {

class AllreduceNative : public Allreduce {
 public:
  const char* name() const override { return "native"; }
  void run(OpContext& ctx, Buffer buffer, ReduceOp op) override;
};

}  // namespace braid
