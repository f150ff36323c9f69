// BucketExchange: how the ranks turn what each compressed for one bucket into the mean, over
// ranks, of what those payloads stand for. It is the second
// door of the compression layer, beside Compressor: a Compressor says how one tensor becomes
// bytes, a BucketExchange says which collectives move them. The paths:
//  - allreduce (summable compressors: fp16, bf16): the payloads are summed on the wire;
//  - gather: every rank's payload goes to every rank (allgather of variable-size bytes), and
//    each rank decodes and sums them in rank order, so every rank gets the bitwise same mean;
//  - two_phase (1-bit Adam's compressed allreduce, torchft's pattern): the bucket is cut into
//    one chunk per rank; each rank compresses every chunk, an alltoall brings the owner of a
//    chunk every rank's payload for it, the owner decodes, sums and averages them (in the
//    bucket's dtype), compresses the mean once more, and an allgather brings every owner's
//    payload to every rank. It sends 2(P-1)/P payloads' worth per rank instead of the gather's
//    P-1. The second compression loses information: with error feedback (ef) each owner keeps
//    a residual of its chunk ("server" error feedback), so what the owner drops is sent later,
//    as on the workers, but measured accuracy still suffers (bench/results/compression.md: top-k
//    1% with EF on the cnn at 4 ranks, 3.0 points below dense gathered, 13.9 in two phases), so
//    `auto` takes it only where the gather would send as many bytes as a dense ring allreduce,
//    i.e. where compressing would otherwise have stopped paying;
//  - powersgd: a rank-r approximation of each matrix of the bucket by two dependent
//    allreduces (powersgd_exchange.h).
// Every path is a blocking function of the communication thread (it runs inside an OpContext).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "collectives/op_context.h"
#include "compression/bucket_layout.h"
#include "compression/compressor.h"
#include "compression/error_feedback.h"

namespace braid {

class BucketExchange {
 public:
  using NamedTensors = ErrorFeedback::NamedTensors;
  virtual ~BucketExchange() = default;
  virtual const char* path() const = 0;  // allreduce | gather | two_phase | powersgd

  // Every rank calls it for the same bucket in the same order. `input` (flat, contiguous,
  // float32 or float64, CPU) is left unchanged; `mean` (same numel and dtype) receives the mean
  // over ranks of what the ranks' payloads stand for, bitwise the same on every rank; `delta`,
  // when not null, receives what this rank's own compressed input stands for as the receivers
  // see it (what error feedback counts as delivered). context.bucket and step must be set.
  virtual void run(OpContext& ctx, const at::Tensor& input, const PayloadContext& context,
                   at::Tensor& mean, at::Tensor* delta) = 0;

  // Whether `mean` is exactly the mean of the ranks' deltas (false where a second compression
  // intervenes); EF21 and EControl need it.
  virtual bool mean_of_deltas() const { return true; }
  // The tensors packed in a bucket, before its first run (PowerSGD and DGC need them).
  virtual void set_layout(int bucket, BucketLayout layout) {}
  // State besides error feedback's (PowerSGD's warm-started Q, two-phase server residuals).
  virtual NamedTensors state() const { return {}; }
  // Replaces it; CheckpointError on an entry the path does not know.
  virtual void load_state(const NamedTensors& state);
  virtual bool state_is_replicated() const { return true; }
};

// Every name compression.name accepts: compressor_names() and powersgd.
const std::vector<std::string>& compression_names();
// auto | gather | two_phase.
const std::vector<std::string>& exchange_path_names();

// Bits per element a compressor's payload takes, estimated from its options (top-k: a float32
// value and about two bytes of varint index per kept element).
double estimated_bits_per_element(const CompressionOptions& options);
// Whether gathering P payloads costs a rank at least what a float32 ring allreduce of the
// bucket costs: P b >= 64.
bool gather_costs_as_much_as_dense(const CompressionOptions& options, int ranks);

// The path for `options` at `ranks` ranks with error feedback `feedback`: powersgd for
// powersgd; allreduce for summable compressors; gather for dgc; else options.exchange, where auto
// means two_phase where gather_costs_as_much_as_dense() unless the feedback needs the exact mean
// of the deltas (ef21, econtrol), and gather otherwise. ConfigError naming the key for a
// combination that cannot work (two_phase with ef21, econtrol or dgc, an unknown path).
std::unique_ptr<BucketExchange> make_bucket_exchange(const CompressionOptions& options,
                                                     ErrorFeedbackKind feedback, int ranks);

}  // namespace braid
