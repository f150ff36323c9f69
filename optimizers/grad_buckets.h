// GradBuckets: the gradient buckets every strategy exchanges. Parameters are grouped into fusion
// buckets of at most `bucket_mb`, in reverse registration order (the order backward produces
// gradients, as PyTorch DDP's Reducer assumes) and never mixing dtypes. Each bucket is one flat
// tensor; every parameter has a view into it. Bucket indices are stable for a model and a cap,
// so a strategy's per-bucket state (compressor residuals, Streaming DiLoCo fragments, trace
// events) names buckets by index.
//
// Readiness and capture: arrive() records that a parameter's .grad is final for this backward
// pass and says when that made its bucket complete; new_backward() counts arrivals afresh.
// capture() copies each of a bucket's parameters' .grad, as it is then, into its view (zeros for
// an undefined one) and remembers which .grad tensor and version it copied, so that
// changed_since_capture() tells when the user changed .grad afterwards (zero_grad(), another
// backward pass, an in-place edit): what is exchanged is what .grad holds, never a gradient kept
// aside. A bucket can also carry one usage slot per parameter after its gradients (1 if the
// parameter's .grad was defined on this rank when captured, else 0): exchanged with the
// gradients, the slots tell every rank which parameters have a gradient anywhere without a
// separate message. With usage slots a bucket ends with one more, the non-finite slot (1 if this
// rank's gradients in the bucket are not all finite, else 0, written by check_finite() before
// sending): exchanged the same way, it tells every rank that some rank's bucket held a NaN or inf
// (NonFiniteGuard). Not thread-safe: the owning strategy serialises calls (hooks may run on
// autograd worker threads).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "compression/bucket_exchange.h"

namespace braid {

class GradBuckets {
 public:
  // Returns zeroed memory of `bytes` for all buckets, or nullptr (then each bucket is a tensor of
  // its own); the memory must outlive the buckets.
  using Allocate = std::function<void*(std::size_t bytes)>;

  // With `allocate` the buckets lie one after another (64-byte aligned) in one block from it,
  // e.g. the node's shared memory (Communicator::allocate_shared), so that every rank's bucket
  // b sits at the same offset and an allreduce reads peers' buckets in place. CPU only.
  GradBuckets(std::vector<at::Tensor> parameters, double bucket_mb, bool usage_slots,
              const Allocate& allocate = nullptr);

  int bucket_count() const { return static_cast<int>(buckets_.size()); }
  // Whether the buckets lie in the block from the constructor's `allocate`.
  bool in_allocated_block() const { return in_block_; }
  int parameter_count() const { return static_cast<int>(params_.size()); }
  const at::Tensor& parameter(int param) const { return params_[param]; }
  int bucket_of(int param) const { return bucket_of_[param]; }
  // Parameter indices of a bucket, in the order their views sit in it.
  const std::vector<int>& parameters_of(int bucket) const { return buckets_[bucket].params; }

  // The whole flat tensor of a bucket (gradients, then usage slots and the non-finite slot if
  // enabled): what is sent.
  const at::Tensor& flat(int bucket) const { return buckets_[bucket].flat; }
  // The gradient part of a bucket, and one parameter's gradient view (flat, numel elements).
  at::Tensor gradients(int bucket) const;
  // Everything after the gradients: the usage slots and the non-finite slot (empty without usage
  // slots), which an exchange that encodes the gradients sums on their own.
  at::Tensor slots(int bucket) const;
  at::Tensor view(int param) const;
  // Where each parameter of a bucket sits in it, with its shape (for per-matrix compression).
  BucketLayout layout(int bucket) const;

  // The parameter's .grad is final for this backward pass. Returns true when this made the
  // parameter's bucket complete.
  bool arrive(int param);
  bool arrived(int param) const { return arrived_[param]; }
  bool complete(int bucket) const { return buckets_[bucket].pending == 0; }
  // Copies the bucket's parameters' .grad into their views (zeros where undefined) and writes
  // the usage slots; call before sending the bucket.
  void capture(int bucket);
  // Whether the parameter's .grad was defined when its bucket was last captured.
  bool has_gradient(int param) const { return seen_[param].defined; }
  // The first parameter of a captured bucket whose .grad is no longer the tensor and version
  // captured, or -1.
  int changed_since_capture(int bucket) const;
  // The first parameter of the bucket (registration order) whose values are not finite, or -1,
  // after one pass over the bucket; with usage slots, also writes the non-finite slot (after
  // finalize()).
  int check_finite(int bucket);
  // After the exchange: whether any rank's non-finite slot for the bucket was set (usage slots).
  bool nonfinite_anywhere(int bucket) const;
  // After the exchange: per parameter, whether any rank had a gradient for it this step (needs
  // usage slots; a slot is exactly zero, summed or averaged, only if every rank sent 0).
  std::vector<bool> used_anywhere() const;
  // Starts another backward pass of the same step: arrivals are counted anew.
  void new_backward();
  // Starts a new step: nothing has arrived, nothing is captured.
  void reset();

 private:
  struct Bucket {
    at::Tensor flat;
    std::vector<int> params;
    std::int64_t gradient_elements = 0;
    int pending = 0;
  };
  // Every bucket's flat tensor: in one block from `allocate` if it gives one, else its own.
  void place(const std::vector<std::int64_t>& elements,
             const std::vector<at::TensorOptions>& options, const Allocate& allocate);

  std::vector<at::Tensor> params_;
  std::vector<Bucket> buckets_;
  std::vector<int> bucket_of_;
  std::vector<std::int64_t> offset_of_;  // element offset of a parameter's view in its bucket
  std::vector<int> slot_of_;             // position among its bucket's parameters
  // Which .grad a capture copied: a weak reference pins the tensor's address (a freed and
  // reallocated .grad cannot pass for the captured one) without holding its memory or blocking
  // autograd's in-place accumulation, which needs .grad to have no other owner.
  struct Seen {
    c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl> grad{
        c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>()};
    std::int64_t version = 0;
    bool defined = false;
    bool captured = false;
  };
  std::vector<bool> arrived_;  // in this backward pass
  std::vector<Seen> seen_;     // in this step
  bool usage_slots_;
  bool in_block_ = false;
};

}  // namespace braid
