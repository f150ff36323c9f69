// DgcMemory: the per-bucket memory of Deep Gradient Compression (Lin, Han, Mao, Wang, Dally,
// ICLR 2018), used by a CompressedExchange instead of error feedback
// when compression.name is dgc. Per rank and bucket, with m the momentum and N the rank count:
//   g = clip(g, c / sqrt(N));  u = m u + g;  v += u;  send v[top-k];  v[sent] = 0;  u[sent] = 0
// and every rank applies w -= lr * (1/N) sum_r sent_r with plain SGD (the optimizer's own
// momentum is off: DGC took it over, "momentum correction"). Nesterov: u = m (u + g), v += u + g.
//
//  - prepare() clips, updates u and v and returns v (what CompressorDgc sparsifies);
//  - commit() gets delta, v as the receivers decode it on the sent coordinates and 0 elsewhere,
//    and clears v there (so nothing is lost, only delayed: per coordinate
//    sum_t sent_t + v_T = sum_t u_t) and, with momentum factor masking, u too. A coordinate
//    counts as sent when its delta is non-zero: the paper's mask is |v| > thr, which a zero
//    never passes, and sending a zero carries nothing. Tensors the compressor sends whole
//    (dgc_sends_dense, known from set_layout) keep u: masking them would clear it every step
//    and drop their momentum, where the authors' implementation averages them densely and
//    applies the momentum to the mean (the same, by linearity, as sending u whole);
//  - finish() leaves the mean alone: it is the update.
//
// Local gradient clipping is per bucket, each bucket's gradient to c / sqrt(N) in L2 norm. The
// paper clips the whole local gradient, but buckets are sent during backward, before the whole
// gradient exists; the reimplementation (synxlin/deep-gradient-compression) clips per tensor in
// the same hook for the same reason, and a bucket is the unit this runtime sends. With one
// bucket (small models, or sync.bucket_mb above the model size) it is the paper's rule.
//
// State tensors have the bucket's dtype and live on the CPU; state() names them
// "<bucket>.momentum" (u) and "<bucket>.velocity" (v). They differ between ranks.
#pragma once

#include <map>
#include <vector>

#include "compression/bucket_memory.h"

namespace braid {

class DgcMemory : public BucketMemory {
 public:
  // clip_norm > 0: clip each bucket's gradient to clip_norm / sqrt(ranks) before accumulating.
  // ratio: the compressor's target keep-ratio, for dgc_sends_dense.
  DgcMemory(const DgcOptions& options, double ratio, int ranks, double clip_norm);

  at::Tensor prepare(int bucket, const at::Tensor& gradient) override;
  bool needs_delta() const override { return true; }
  void commit(int bucket, const at::Tensor& gradient, const at::Tensor& input,
              const at::Tensor& delta) override;
  void finish(int bucket, at::Tensor& mean_of_decoded) override {}
  void set_layout(int bucket, const BucketLayout& layout) override;

  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  bool state_is_replicated() const override { return false; }
  bool clips_locally() const override { return true; }

 private:
  struct BucketState {
    at::Tensor momentum;  // u
    at::Tensor velocity;  // v
  };
  BucketState& bucket_state(int bucket, const at::Tensor& like);
  at::Tensor clipped(const at::Tensor& gradient) const;

  // The [offset, offset + numel) ranges of a bucket where momentum masking applies (the
  // tensors sent by top-k); a bucket without a layout is masked whole.
  struct Range {
    std::int64_t offset = 0;
    std::int64_t numel = 0;
  };
  void mask_momentum(int bucket, BucketState& state, const at::Tensor& sent);

  DgcOptions options_;
  double ratio_;
  std::map<int, std::vector<Range>> masked_ranges_;
  double local_clip_;  // clip_norm / sqrt(ranks); 0: no clipping
  std::map<int, BucketState> buckets_;
};

}  // namespace braid
