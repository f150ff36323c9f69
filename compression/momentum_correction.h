// MomentumCorrection: Deep Gradient Compression's momentum correction (Lin et al., ICLR
// 2018) for any compressor and any error feedback: the momentum is accumulated per
// rank before compression instead of after the exchange,
//   u = m u + g;  what the inner memory (error feedback) compresses is u, not g,
// and the optimizer runs plain SGD on the averaged result. With a lossless compressor this is
// momentum SGD exactly (sum_r u_r / P follows the momentum recurrence of the mean gradient); with
// a lossy one it keeps error feedback's residual in the same units as the update. Without it,
// error feedback delays gradient mass by many steps and the optimizer's momentum multiplies that
// delayed mass by 1/(1-m), which diverges at learning rates dense training takes (measured:
// sign with error feedback on the Fashion-MNIST cnn, lr 0.05, momentum 0.9, ends at chance;
// bench/README.md). `compression.momentum_correction: true` selects it; the optimizer's momentum
// is then 0 (runtime/optimizer_factory.cpp). DGC has it built in (dgc_memory.h), together with
// momentum factor masking, which only makes sense for sparse compressors.
//
// State: the inner memory's, and u per bucket as "<bucket>.momentum"; per rank.
#pragma once

#include <map>
#include <memory>

#include "compression/bucket_memory.h"

namespace braid {

class MomentumCorrection : public BucketMemory {
 public:
  MomentumCorrection(double momentum, std::unique_ptr<BucketMemory> inner);

  at::Tensor prepare(int bucket, const at::Tensor& gradient) override;
  bool needs_delta() const override { return inner_->needs_delta(); }
  void commit(int bucket, const at::Tensor& gradient, const at::Tensor& input,
              const at::Tensor& delta) override;
  void finish(int bucket, at::Tensor& mean_of_decoded) override {
    inner_->finish(bucket, mean_of_decoded);
  }
  bool starts_dense(int bucket) const override { return inner_->starts_dense(bucket); }

  void set_layout(int bucket, const BucketLayout& layout) override {
    inner_->set_layout(bucket, layout);
  }
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  bool state_is_replicated() const override { return false; }

 private:
  double momentum_;
  std::unique_ptr<BucketMemory> inner_;
  std::map<int, at::Tensor> velocity_;  // u, by bucket
};

}  // namespace braid
