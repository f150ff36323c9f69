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
// updated estimate h); and the bucket's usage slots are summed with a small allreduce.
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
};

class CompressedExchange {
 public:
  CompressedExchange(std::shared_ptr<Communicator> comm, const CompressedExchangeOptions& options);

  // Starts bucket `bucket`'s exchange of `gradients` (written back with the result) and
  // `usage` (summed); both must stay alive and untouched until the Work completes.
  [[nodiscard]] Work launch(int bucket, at::Tensor gradients, at::Tensor usage, std::int64_t step);

  // The tensors packed in `bucket` (PowerSGD compresses each matrix); before its first launch.
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

  std::shared_ptr<Communicator> comm_;
  std::unique_ptr<BucketMemory> memory_;
  std::unique_ptr<BucketExchange> path_;
  std::unique_ptr<Allreduce> ring_;  // for the usage slots, on the comm thread
  std::atomic<std::uint64_t> bytes_dense_{0};
};

}  // namespace braid
