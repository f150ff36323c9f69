// CompressedExchange: one bucket's exchange through the compression layer, with error feedback,
// as one collective on the communication thread, so encoding and decoding overlap backward like
// a plain allreduce does. Nothing here assumes the tensor is a gradient.
//
// Per bucket and step, on every rank: the bucket memory (error feedback, or DGC's momentum
// correction: compression/bucket_memory.h) turns the bucket's tensor into what is compressed
// (BucketMemory::prepare); the BucketExchange of the compressor and rank count
// (compression/bucket_exchange.h: allreduce, gather, two_phase or powersgd) produces the mean
// over ranks and this rank's delivered part; the memory commits the delta and turns the mean
// into the tensor the optimizer uses (EF and DGC: the mean itself; EF21 and EControl: the
// updated estimate h). Before any of that, the bucket's slots (usage slots and the non-finite
// flag, GradBuckets) are summed with a small allreduce, so every rank knows before encoding
// whether some rank's bucket held a NaN or inf.
//
// Non-finite buckets (NonFiniteGuard). Buckets of a step come in index order from bucket 0. From
// the first bucket whose summed flag is set to the end of the step, no rank prepares, encodes or
// commits anything: nothing non-finite reaches a compressor or a residual, and every rank skips
// the same buckets. With `restore_on_skip` (train.nonfinite: skip), the memory's and the path's
// state of each bucket before the last is copied before its exchange, and the copies are put back
// when a later bucket of the same step is flagged, so a skipped step leaves all state as it was
// (cost: one copy of each such bucket's state per step, on the communication thread; without it,
// as under train.nonfinite: error, which stops the run, nothing is copied).
// bytes_dense() counts what a ring allreduce of the uncompressed buckets would have sent, for the
// compression ratio.
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "collectives/communicator.h"
#include "compression/bucket_exchange.h"
#include "compression/bucket_memory.h"
#include "compression/compressor.h"
#include "compression/error_feedback.h"
#include "optimizers/sync_strategy.h"

namespace braid {

struct CompressedExchangeOptions {
  CompressionOptions compression;
  std::string error_feedback = "none";  // none | ef | ef21 | econtrol
  double eta = 1e-3;                    // econtrol
  // The strategy's clip_norm (> 0: clip), for a memory that clips each rank's gradient itself
  // (dgc: per bucket to clip_norm / sqrt(ranks)); the others leave clipping to the strategy.
  double clip_norm = 0;
  bool restore_on_skip = false;  // above: train.nonfinite is skip
  // The allreduce strategy's first dense_steps steps average the buckets uncompressed (a plain
  // allreduce; no residual builds up), as PyTorch's powerSGD_hook does before
  // start_powerSGD_iter; compression starts at step dense_steps (for ef21 and econtrol with
  // the gradient start, the step after: step dense_steps is their dense start).
  std::int64_t dense_steps = 0;
};

// "the compression's residuals (compression.name 'topk', compression.error_feedback 'ef')":
// what a non-replicated CompressedExchange keeps per rank, for messages.
std::string per_rank_residuals(const CompressedExchangeOptions& options);

class CompressedExchange {
 public:
  // `buckets`: how many buckets each step launches (0, 1, ... in order).
  CompressedExchange(std::shared_ptr<Communicator> comm, const CompressedExchangeOptions& options,
                     int buckets);

  // Starts bucket `bucket`'s exchange of `gradients` (written back with the result, unless the
  // step is flagged non-finite: then left as it is) and `slots` (summed first; its last element
  // is the bucket's non-finite flag); both must stay alive and untouched until the Work completes.
  [[nodiscard]] Work launch(int bucket, at::Tensor gradients, at::Tensor slots, std::int64_t step);

  // The tensors packed in `bucket` (PowerSGD compresses each matrix, DGC selects per tensor);
  // before its first launch.
  void set_layout(int bucket, BucketLayout layout);
  const char* path() const { return path_->path(); }

  // The memory's and the exchange path's state ("exchange." names the latter): call only
  // when no exchange is in flight.
  NamedTensors state() const;
  void load_state(const NamedTensors& state);
  // Whether the state is the same on every rank (no per-rank residuals).
  bool state_is_replicated() const;
  // Whether the memory clipped each rank's gradient (dgc), so the average must not be clipped.
  bool clips_locally() const { return memory_->clips_locally(); }

  std::uint64_t bytes_dense() const { return bytes_dense_.load(std::memory_order_relaxed); }

 private:
  void exchange(OpContext& ctx, int bucket, at::Tensor& gradients, std::int64_t step);
  // Whether the bucket may be exchanged, given its summed flag (the step's first flag restores
  // what earlier buckets changed).
  bool admit(int bucket, bool flagged);
  void save_bucket_state(int bucket);
  void restore_saved_state();

  std::shared_ptr<Communicator> comm_;
  std::unique_ptr<BucketMemory> memory_;
  std::unique_ptr<BucketExchange> path_;
  // For the slots and for a memory's dense start (starts_dense()), on the comm thread. Every
  // rank takes the dense start for the same bucket and step: it depends only on whether the
  // bucket has state, which every rank creates, restores and loads at the same steps.
  std::unique_ptr<Allreduce> ring_;
  std::atomic<std::uint64_t> bytes_dense_{0};
  const int buckets_;
  const bool restore_on_skip_;
  // Communication thread only: whether a bucket of this step was flagged, and the state of the
  // buckets exchanged before (restore_on_skip_).
  bool flagged_step_ = false;
  std::vector<int> saved_buckets_;
  NamedTensors saved_memory_, saved_path_;
};

}  // namespace braid
