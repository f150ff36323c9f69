// BucketLayout: which tensors a flat bucket packs, so that methods defined per tensor (PowerSGD's
// matrices, DGC's per-layer top-k) can find them in the bucket. Segments are in increasing offset
// order and do not overlap; elements between them (alignment) belong to no tensor.
#pragma once

#include <cstdint>
#include <vector>

#include "common/error.h"

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

// CheckError (the caller's bug) unless the segments are in increasing offset order and do not
// overlap; `who` names the method in the message.
inline void check_bucket_layout(const BucketLayout& layout, const char* who, int bucket) {
  std::int64_t end = 0;
  for (const TensorSegment& tensor : layout) {
    BRAID_CHECK(tensor.offset >= end, who, ": bucket ", bucket, " layout overlaps or is unsorted");
    end = tensor.offset + tensor.numel();
  }
}

}  // namespace braid
