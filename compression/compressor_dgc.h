// CompressorDgc: Deep Gradient Compression's sparsifier (Lin et al., ICLR 2018).
// Per worker and tensor DGC sends the top-k of the accumulated velocity,
//   u = m u + g;  v += u;  send (idx, v[idx]) for the k largest |v|;  v[idx] = 0;  u[idx] = 0,
// and this class is the "send" part: CompressorTopK (sampled threshold for large tensors, exact
// top-k for small ones, varint index skips; payloads are top-k payloads) with a keep-ratio that
// follows DGC's warm-up of sparsity. The velocity, momentum, masking and local clipping are the
// bucket memory's (dgc_memory.h).
//
// Per tensor, as the paper selects per layer: with the bucket's layout (set_layout), each tensor
// keeps its own k = kept_elements(ratio, numel) largest entries, so a layer of small gradients is
// not starved by a neighbour of large ones in the same bucket, and dgc_sends_dense() tensors are
// sent whole (in the same sparse payload: every index, about 1.25x their dense bytes, which for
// biases and norm scales is a small part of the model). A bucket without a layout is one tensor.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "compression/compressor_topk.h"

namespace braid {

// The kept ratio at `step`: ratio^((e+1)/(warmup_epochs+1)) during epoch e < warmup_epochs with
// e = step / steps_per_epoch, then `ratio` (for ratio 0.001 and 4 warm-up epochs: 0.251, 0.063,
// 0.0158, 0.0040, then 0.001; the paper rounds them to 0.25, 0.0625, 0.0156, 0.0039). A pure
// function of the step, so a resumed run continues the schedule. ConfigError naming
// compression.warmup_epochs if it is negative, or positive while steps_per_epoch < 1.
double dgc_kept_ratio(double ratio, const DgcOptions& dgc, std::int64_t step);

// Whether DGC sends `segment` whole instead of its top-k: tensors of at most one dimension
// (biases, normalisation scales; the authors' implementation sparsifies only tensors of two or
// more dimensions) and tensors whose top-k at the target `ratio` would keep less than one element
// (numel * ratio < 1), which sparsifying would starve.
bool dgc_sends_dense(const TensorSegment& segment, double ratio);

class CompressorDgc : public CompressorTopK {
 public:
  CompressorDgc(double ratio, const DgcOptions& dgc, std::uint64_t seed);
  const char* name() const override { return "dgc"; }

  std::vector<std::uint8_t> encode(const at::Tensor& input, const PayloadContext& context) override;
  void set_layout(int bucket, const BucketLayout& layout) override;

 protected:
  double kept_ratio(std::int64_t step) const override;

 private:
  struct Segment {
    std::int64_t offset = 0;
    std::int64_t numel = 0;
    bool dense = false;
  };

  double target_ratio_;
  DgcOptions dgc_;
  std::map<int, std::vector<Segment>> layouts_;  // by bucket
};

}  // namespace braid
