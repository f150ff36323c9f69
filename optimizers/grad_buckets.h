// GradBuckets: the gradient buckets every strategy exchanges. Parameters are grouped into fusion
// buckets of at most `bucket_mb`, in reverse registration order (the order backward produces
// gradients, as PyTorch DDP's Reducer assumes) and never mixing dtypes. Each bucket is one flat
// tensor; every parameter has a view into it. Bucket indices are stable for a model and a cap,
// so a strategy's per-bucket state (compressor residuals, Streaming DiLoCo fragments, trace
// events) names buckets by index.
//
// Readiness: add_gradient() copies a parameter's gradient into its view (adding to it if the
// view already holds this step's gradient: a second arrival, or an earlier micro-step of
// gradient accumulation) and says when the bucket's last parameter arrived in this backward
// pass. new_backward() starts counting arrivals afresh but keeps the accumulated values. A bucket
// can also carry one usage slot per parameter after its gradients (1 if the parameter got a
// gradient on this rank this step, else 0): exchanged with the gradients, the slots tell every
// rank which parameters got a gradient anywhere without a separate message. With usage slots a
// bucket ends with one more, the non-finite slot (1 if this rank's gradients in the bucket are not
// all finite, else 0, written by check_finite() before sending): exchanged the same way, it tells
// every rank that some rank's bucket held a NaN or inf (NonFiniteGuard). Not thread-safe:
// the owning strategy serialises calls (hooks may run on autograd worker threads).
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

  // Copies (or, on a second arrival in the step, adds) `grad` into the parameter's view.
  // Returns true when this made the parameter's bucket complete.
  bool add_gradient(int param, const at::Tensor& grad);
  bool arrived(int param) const { return arrived_[param]; }
  // Whether the parameter got a gradient in any backward pass of this step.
  bool has_gradient(int param) const { return has_value_[param]; }
  bool complete(int bucket) const { return buckets_[bucket].pending == 0; }
  // Zeroes the views of the bucket's parameters that got no gradient this step and writes its
  // usage slots; call once before sending the bucket.
  void finalize(int bucket);
  // The first parameter of the bucket (registration order) whose values are not finite, or -1,
  // after one pass over the bucket; with usage slots, also writes the non-finite slot (after
  // finalize()).
  int check_finite(int bucket);
  // After the exchange: whether any rank's non-finite slot for the bucket was set (usage slots).
  bool nonfinite_anywhere(int bucket) const;
  // After the exchange: per parameter, whether any rank had a gradient for it this step (needs
  // usage slots; a slot is exactly zero, summed or averaged, only if every rank sent 0).
  std::vector<bool> used_anywhere() const;
  // Starts another backward pass of the same step (gradient accumulation): arrivals are counted
  // anew, values are kept and added to.
  void new_backward();
  // Starts a new step: nothing has arrived, nothing is held.
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
  std::vector<bool> arrived_;            // in this backward pass
  std::vector<bool> has_value_;          // in this step
  bool usage_slots_;
  bool in_block_ = false;
};

}  // namespace braid
