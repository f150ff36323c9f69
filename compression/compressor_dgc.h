// CompressorDgc: Deep Gradient Compression's sparsifier (Lin et al., ICLR 2018).
// Per worker and bucket DGC sends the top-k of the accumulated velocity,
//   u = m u + g;  v += u;  send (idx, v[idx]) for the k largest |v|;  v[idx] = 0;  u[idx] = 0,
// and this class is the "send" part: CompressorTopK (sampled threshold for large buckets, exact
// top-k for small ones, varint index skips; payloads are top-k payloads) with a keep-ratio that
// follows DGC's warm-up of sparsity. The velocity, momentum, masking and local clipping are the
// bucket memory's (dgc_memory.h).
#pragma once

#include <cstdint>

#include "compression/compressor_topk.h"

namespace braid {

// The kept ratio at `step`: ratio^((e+1)/(warmup_epochs+1)) during epoch e < warmup_epochs with
// e = step / steps_per_epoch, then `ratio` (for ratio 0.001 and 4 warm-up epochs: 0.251, 0.063,
// 0.0158, 0.0040, then 0.001; the paper rounds them to 0.25, 0.0625, 0.0156, 0.0039). A pure
// function of the step, so a resumed run continues the schedule. ConfigError naming
// compression.warmup_epochs if it is negative, or positive while steps_per_epoch < 1.
double dgc_kept_ratio(double ratio, const DgcOptions& dgc, std::int64_t step);

class CompressorDgc : public CompressorTopK {
 public:
  CompressorDgc(double ratio, const DgcOptions& dgc, std::uint64_t seed);
  const char* name() const override { return "dgc"; }

 protected:
  double kept_ratio(std::int64_t step) const override;

 private:
  double target_ratio_;
  DgcOptions dgc_;
};

}  // namespace braid
