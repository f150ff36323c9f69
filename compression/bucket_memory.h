// BucketMemory: the per-bucket state a rank keeps around a compressed exchange, the door behind
// which error feedback (error_feedback.h: EF, EF21, EControl) and Deep Gradient Compression's
// momentum correction (dgc_memory.h) stand. Per bucket and step a CompressedExchange calls
//   input = prepare(bucket, g)          what to compress, from the local tensor g
//   BucketExchange::run(input)          -> mean over ranks, and delta: what this rank delivered
//                                          (where starts_dense(): a dense mean, delta = input)
//   commit(bucket, g, input, delta)     learn what was delivered
//   finish(bucket, mean)                the mean becomes the optimizer's input, in place
// Between prepare() and commit() no other call for the bucket may come. Not thread-safe: one
// exchange owns one memory and calls it from its communication thread.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compression/compressor.h"

namespace braid {

class BucketMemory {
 public:
  // The same alias as optimizers/sync_strategy.h's NamedTensors (this layer sits below it).
  using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;
  virtual ~BucketMemory() = default;

  virtual at::Tensor prepare(int bucket, const at::Tensor& gradient) = 0;
  // Whether commit() needs delta.
  virtual bool needs_delta() const = 0;
  virtual void commit(int bucket, const at::Tensor& gradient, const at::Tensor& input,
                      const at::Tensor& delta) = 0;
  virtual void finish(int bucket, at::Tensor& mean_of_decoded) = 0;
  // Whether the exchange must send this bucket's input uncompressed this time (and commit it
  // as its own delta): EF21's and EControl's first step, where h_i starts at the gradient.
  virtual bool starts_dense(int bucket) const { return false; }

  // The tensors packed in `bucket`, before its first prepare() (dgc treats its dense tensors
  // apart); the others ignore it.
  virtual void set_layout(int bucket, const BucketLayout& layout) {}
  virtual NamedTensors state() const = 0;
  // Replaces all state; CheckpointError on a name it does not know.
  virtual void load_state(const NamedTensors& state) = 0;
  // Whether the state is the same on every rank.
  virtual bool state_is_replicated() const = 0;
  // Whether the memory clips each rank's gradient itself (DGC's local clipping), so the
  // strategy must not clip the averaged gradient again.
  virtual bool clips_locally() const { return false; }
};

// The memory of `options.name`: dgc's (with momentum correction and, for clip_norm > 0, local
// clipping to clip_norm / sqrt(ranks)) or error feedback of kind `error_feedback` (eta: EControl's
// strength). ConfigError naming the key for an unknown kind, or dgc with error feedback.
std::unique_ptr<BucketMemory> make_bucket_memory(const CompressionOptions& options,
                                                 const std::string& error_feedback, double eta,
                                                 int ranks, double clip_norm);

}  // namespace braid
