// Element-wise reduction kernels used by every algorithm. float16 and bfloat16 are reduced in
// float32 and rounded once per call, so p-1 hops round p-1 times rather than accumulating error
// in 16-bit arithmetic. kAvg reduces as a sum; finish_avg() divides once at the end (integer
// types divide with truncation toward zero). uint8 (raw bytes) is never reduced: both functions
// throw CheckError for it. CUDA buffers (src on the same device) go to the CUDA kernels of
// collectives/device_ops.h.
#pragma once

#include "collectives/buffer.h"

namespace braid {

// dst[i] = dst[i] (op) src[i] for i < dst.count; src has dst's dtype and count.
void reduce_into(Buffer dst, const void* src, ReduceOp op);

// dst[i] /= divisor, for kAvg after a sum.
void finish_avg(Buffer dst, int divisor);

}  // namespace braid
