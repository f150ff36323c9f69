// ParameterExchange: averages parameter-shaped tensors over ranks for the local-update methods:
// pseudo-gradients (DiLoCo, Streaming DiLoCo) or parameters themselves (CO2). Nothing here
// assumes what the tensors mean.
//
// The tensors it is built for (all parameters, or a fragment's) get slots in a few flat buckets
// (GradBuckets' layout: at most `bucket_mb` each, one dtype per bucket). The owner writes each
// tensor's value into view(i), calls launch(), and after the Work completes reads the mean over
// ranks from the same views. Each bucket is averaged with a plain allreduce (`algorithm`), or,
// when compression is configured, through CompressedExchange: any compressor, with error
// feedback, keyed by bucket index. launch() returns at once, so a method can overlap the
// exchange with compute (Streaming DiLoCo, CO2); the views must stay untouched until the Work
// completes. Bytes: a ring allreduce sends 2(P-1)/P x the buckets' bytes per rank per launch.
// Only the training thread calls it; the exchanges run on the communicator's thread.
//
// Non-finite values (NonFiniteGuard): launch() checks every bucket first (one pass, on the
// training thread) and remembers this rank's first non-finite tensor (first_nonfinite()). The
// ranks learn whether any rank's tensors (or the caller's `flag`) were not finite, with no byte
// of their own: a plain allreduce carries a NaN into the mean, which every rank receives bitwise
// alike and tests after the exchange (a flagged rank whose values are finite writes one NaN); a
// compressed exchange sums one flag per bucket before encoding, and then no rank encodes
// anything (compressed_exchange.h), one small allreduce per bucket and launch.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collectives/communicator.h"
#include "optimizers/compressed_exchange.h"
#include "optimizers/grad_buckets.h"
#include "optimizers/sync_strategy.h"

namespace braid {

struct ParameterExchangeOptions {
  std::string algorithm = "auto";  // of the plain allreduce
  double bucket_mb = 4.0;
  // compression.name other than none, or error feedback: buckets go through CompressedExchange.
  CompressedExchangeOptions compression;
};

class ParameterExchange {
 public:
  // `like`: one tensor per slot, giving its shape and dtype (the exchange's dtype: pass float32
  // or float64 tensors, e.g. the anchors, so a bf16 model is still averaged in float32).
  ParameterExchange(std::shared_ptr<Communicator> comm, const std::vector<at::Tensor>& like,
                    ParameterExchangeOptions options);
  // Waits for an exchange still in flight (aborting the communicator first, since its peers are
  // out of step), so the communication thread never writes into freed buffers.
  ~ParameterExchange();

  // Tensor i's slot, shaped like it.
  at::Tensor view(int i) const;
  int size() const { return buckets_.parameter_count(); }
  // The number of elements exchanged per launch.
  std::int64_t numel() const { return numel_; }

  // Starts averaging every bucket over ranks; `round` seeds randomised compressors. One Work
  // for the whole launch; at most one launch in flight. `flag`: count this rank's values as not
  // finite whatever they are (a local-update rank that saw a non-finite gradient this round).
  [[nodiscard]] Work launch(std::int64_t round, bool flag = false);
  // The first tensor (slot index) whose values were not finite at the last launch, or -1.
  int first_nonfinite() const { return first_nonfinite_; }
  // Once the last launch completed: whether some rank's values were not finite or flagged (then
  // the views hold nothing to use). Plain allreduce: one pass over the mean.
  bool nonfinite_anywhere() const;
  // Whether a launch is still running (a Work not yet waited for or not completed).
  bool in_flight() const { return !last_.is_completed(); }

  bool compressed() const { return static_cast<bool>(compressed_); }
  // What the same exchanges would have sent as a dense float ring allreduce.
  std::uint64_t bytes_dense() const;
  // Error feedback's and the compression path's state (none without compression); call only
  // when nothing is in flight.
  NamedTensors state() const;
  void load_state(const NamedTensors& state);
  bool state_is_replicated() const;

 private:
  std::shared_ptr<Communicator> comm_;
  ParameterExchangeOptions options_;
  GradBuckets buckets_;
  std::int64_t numel_ = 0;
  std::unique_ptr<CompressedExchange> compressed_;  // null: plain allreduce
  std::vector<at::Tensor> flags_;                   // compressed: each bucket's non-finite flag
  int first_nonfinite_ = -1;
  Work last_;
  // The last launch's bucket jobs: abort() completes the queued join at once while a bucket's
  // job may still be running, so the destructor waits for these too.
  std::vector<Work> parts_;
};

}  // namespace braid
