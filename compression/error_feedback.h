// ErrorFeedback: the decorator around a Compressor that keeps, per bucket, what compression has
// not yet delivered, in gradient units. Per bucket and step a rank calls
// encode() (what to send), the strategy exchanges the payloads and forms the mean of the decoded
// payloads over ranks, and finish() turns that mean, in place, into the direction the optimizer
// must use. With g the local input (a gradient or, for local-update methods, a pseudo-gradient):
//   none:     Delta = C(g);                                       update = mean(Delta)
//   ef:       p = g + e; Delta = C(p); e = p - Delta;             update = mean(Delta)
//   ef21:     Delta = C(g - h_i); h_i += Delta; h += mean(Delta); update = h
//   econtrol: Delta = C(eta e + g - h_i); e += g - h_i - Delta; h_i += Delta;
//             h += mean(Delta);                                   update = h
// Delta is the payload decoded on this rank exactly as the receivers decode it, so the state
// here and the state the other ranks imply stay in step.
//
// Initial state: e = 0, h_i = 0, h = 0. Where h_i starts (EstimateInit) is up to the exchange:
//  - gradient (the papers' h_i^0 = g_i^0): while a bucket has no state, starts_dense() asks the
//    exchange to send prepare()'s input (g itself, as h_i = e = 0) uncompressed and to commit it
//    as delta, so after step 0 h_i = g^0, e = 0 and the update is the dense mean of g^0. At
//    top-k 1% a compressed start leaves h far below g for the first hundred steps.
//  - compressed: step 0 is an ordinary step. For EF21 that makes h_i after step 0 equal C(g^0),
//    EF21's compressed initialisation. For EControl the same holds for h_i, and e keeps
//    g^0 - C(g^0) instead of being dropped, so eta = 0 reproduces EF21 exactly.
// Either way nothing of g^0 is lost: the telescoping invariant sum_t g_t - sum_t h_{i,t+1} = e_T
// holds from step 0 (as algorithms_checks.py computes it). encode() always compresses: it is
// the single-payload form, for callers that do not honour starts_dense().
//
// State tensors have the bucket's dtype and live on the CPU; state() and load_state() name them
// "<bucket>.error", "<bucket>.estimate" (h_i) and "<bucket>.mean_estimate" (h). Not thread-safe:
// one strategy owns one ErrorFeedback. It is one of the BucketMemory kinds (bucket_memory.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "compression/bucket_memory.h"
#include "compression/compressor.h"

namespace braid {

enum class ErrorFeedbackKind { kNone, kEf, kEf21, kEControl };
enum class EstimateInit { kGradient, kCompressed };

// none, ef, ef21, econtrol.
const std::vector<std::string>& error_feedback_names();
// Throws ConfigError naming compression.error_feedback and the valid names.
ErrorFeedbackKind parse_error_feedback(const std::string& name);
// gradient, compressed.
const std::vector<std::string>& estimate_init_names();
// Throws ConfigError naming compression.estimate_init and the valid names.
EstimateInit parse_estimate_init(const std::string& name);

class ErrorFeedback : public BucketMemory {
 public:
  // eta: EControl's feedback strength (ignored by the others); ConfigError naming
  // compression.eta unless it is finite and >= 0. init: where h_i starts (ef21, econtrol).
  explicit ErrorFeedback(ErrorFeedbackKind kind, double eta = 0.0,
                         EstimateInit init = EstimateInit::kGradient);
  ErrorFeedbackKind kind() const { return kind_; }

  // Whether `bucket`'s next exchange must go out uncompressed: ef21 and econtrol with the
  // gradient initialisation, before the bucket has state (its first step, also after a
  // skipped first step or a restore without it).
  bool starts_dense(int bucket) const override;

  // The two halves of encode() for exchanges that are not one payload (two-phase, PowerSGD):
  // prepare() returns what to compress (for none, `gradient` itself); once the exchange knows
  // `delta`, what this rank's compressed `input` stands for as the receivers decode it, commit()
  // updates e and h_i. Between the two no other call for the bucket may come.
  at::Tensor prepare(int bucket, const at::Tensor& gradient) override;
  void commit(int bucket, const at::Tensor& gradient, const at::Tensor& input,
              const at::Tensor& delta) override;
  // Whether commit() needs delta (every kind but none).
  bool needs_delta() const override { return kind_ != ErrorFeedbackKind::kNone; }
  // Whether finish() needs the mean of exactly the deltas committed on each rank (ef21 and
  // econtrol keep h = mean_i h_i), so an exchange may not recompress on the way.
  bool needs_exact_mean() const {
    return kind_ == ErrorFeedbackKind::kEf21 || kind_ == ErrorFeedbackKind::kEControl;
  }

  // Encodes what this rank sends for `bucket` (context.bucket is set to it; context.source_rank
  // must be this rank) and updates this rank's e and h_i. `gradient` is not modified.
  std::vector<std::uint8_t> encode(int bucket, const at::Tensor& gradient, Compressor& compressor,
                                   PayloadContext context);
  // `mean_of_decoded` (the mean over ranks of the decoded payloads) becomes the update.
  void finish(int bucket, at::Tensor& mean_of_decoded) override;

  NamedTensors state() const override;
  // Replaces all state; CheckpointError on a name it does not know.
  void load_state(const NamedTensors& state) override;
  bool state_is_replicated() const override { return kind_ == ErrorFeedbackKind::kNone; }

 private:
  struct BucketState {
    at::Tensor error;          // e (ef, econtrol)
    at::Tensor estimate;       // h_i (ef21, econtrol)
    at::Tensor mean_estimate;  // h (ef21, econtrol)
  };
  BucketState& bucket_state(int bucket, const at::Tensor& like);

  ErrorFeedbackKind kind_;
  double eta_;
  EstimateInit init_;
  std::map<int, BucketState> buckets_;
};

}  // namespace braid
