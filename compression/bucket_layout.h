// BucketLayout: which tensors a flat bucket packs, so that methods defined per tensor (PowerSGD's
// matrices, DGC's per-layer top-k) can find them in the bucket. Segments are in increasing offset
// order and do not overlap; elements between them (alignment) belong to no tensor.
#pragma once

#include <cstdint>
#include <vector>

namespace braid {

// One tensor packed into a bucket: where it starts (in elements) and its shape.
struct TensorSegment {
  std::int64_t offset = 0;
  std::vector<std::int64_t> shape;

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    return n;
  }
};

using BucketLayout = std::vector<TensorSegment>;

}  // namespace braid
