// Block layout helpers shared by the collectives that move one block per rank (allgatherv,
// gather, alltoallv, reduce-scatter): prefix offsets of per-rank counts and a copy that is a
// no-op when source and destination alias.
#pragma once

#include <numeric>
#include <vector>

#include "collectives/buffer.h"
#include "collectives/device_ops.h"

namespace braid {

// offsets[i] = counts[0] + ... + counts[i-1]; offsets.back() is the total.
inline std::vector<std::int64_t> offsets_of(const std::vector<std::int64_t>& counts) {
  std::vector<std::int64_t> offsets(counts.size() + 1, 0);
  std::partial_sum(counts.begin(), counts.end(), offsets.begin() + 1);
  return offsets;
}

// dst = src (same dtype and count), on either device.
inline void copy_block(Buffer dst, Buffer src) {
  copy_bytes(dst.data, dst.device, src.data, src.device, src.bytes());
}

}  // namespace braid
