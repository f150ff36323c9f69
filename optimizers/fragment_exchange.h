// FragmentExchange: averages one Streaming DiLoCo fragment's pseudo-gradients over ranks in the
// background, in the configured wire format (compression/wire_codec.h):
//  - float32: a ParameterExchange (ring allreduce of the anchors' dtype, or any compressor of the
//    compression layer); bytes sent per rank per launch 2(P-1)/P x 4 x numel (float32 ring).
//  - bfloat16, e3m0: every rank encodes its own pseudo-gradient (on the communication thread),
//    the payloads are allgathered (ring), and each rank decodes all P payloads and sums them in
//    rank order in the anchors' dtype (float32 or float64), then divides by P. Nothing is
//    re-quantised, so the mean carries one rounding per rank; every rank sums the same payloads
//    in the same order, so the means are bitwise identical. Bytes sent per rank per launch:
//    (P-1) x (wire_bytes(numel) + 1): each payload ends with one flag byte, set when the rank's
//    pseudo-gradient was not finite (or the owner flagged it); a flagged payload is not encoded,
//    and a launch with any flagged payload is not decoded: e3m0 would encode a NaN as 0, so the
//    flag has to travel beside the values.
//  - bfloat16, e3m0 at scale (two_phase_pays(): where the gather would send at least what a
//    float32 ring allreduce sends, P (wire_bytes(n) + 1) >= 8 n, so e3m0 from P = 16 and
//    bfloat16 from P = 4): two phases, the compression layer's TwoPhaseExchange over the wire
//    format (compression/compressor_wire.h): each rank encodes one chunk per rank, an alltoall
//    brings chunk c's P payloads to rank c, which decodes and sums them in rank order in the
//    anchors' dtype, divides by P and encodes the mean once more, and an allgather brings every
//    owner's payload to every rank. The mean then carries a second rounding (the owner's), and
//    every rank still decodes the same payloads, so the means stay bitwise identical. Bytes sent
//    per rank per launch, with w_c = wire_bytes(chunk c) + 1 (the flag byte) and byte counts of
//    8 bytes each: 2 sum_{c != me} w_c + 16 (P-1) for equal chunks (each phase sends every chunk
//    but one). A flagged payload decodes to NaN, which the owner's mean carries on: a launch
//    whose mean is not finite counts as flagged and leaves the view as it was.
// Non-finite values (NonFiniteGuard): launch() checks the fragment first (one pass, training
// thread); nonfinite_anywhere() says, once the launch completed, whether any rank's was flagged
// (float32 wire: ParameterExchange's rule).
// The owner writes the pseudo-gradients into view(k), launches, and reads the mean from the same
// views once the Work completed; the views stay untouched while in flight.
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "collectives/communicator.h"
#include "compression/compressor_wire.h"
#include "compression/two_phase_exchange.h"
#include "compression/wire_codec.h"
#include "optimizers/parameter_exchange.h"

namespace braid {

class FragmentExchange {
 public:
  // `like`: the fragment's anchors (shape and dtype of each slot; one dtype for bf16/e3m0).
  // `fragment` names the fragment in payload errors.
  FragmentExchange(std::shared_ptr<Communicator> comm, const std::vector<at::Tensor>& like,
                   WireFormat wire, const ParameterExchangeOptions& dense, int fragment);
  ~FragmentExchange();

  // Whether the bf16/e3m0 exchange of `numel` elements at `ranks` ranks takes two phases.
  static bool two_phase_pays(WireFormat wire, std::int64_t numel, int ranks);

  at::Tensor view(int k) const;
  std::int64_t numel() const { return numel_; }
  // Starts the exchange; at most one in flight. `flag`: count this rank's values as not finite.
  [[nodiscard]] Work launch(std::int64_t round, bool flag = false);
  // This rank's first non-finite slot at the last launch, or -1.
  int first_nonfinite() const;
  // Once the last launch completed: whether some rank's values were not finite or flagged.
  bool nonfinite_anywhere() const;
  bool in_flight() const { return !last_.is_completed(); }

  // Bytes one launch sends per rank (the formulas above; exact for equal ring chunks).
  std::uint64_t bytes_per_launch() const;
  // What a dense float ring allreduce of the same launches would have sent.
  std::uint64_t bytes_dense() const;
  bool compressed() const;
  // Compression's error feedback (float32 wire only); none otherwise.
  NamedTensors state() const;
  void load_state(const NamedTensors& state);
  bool state_is_replicated() const;

 private:
  std::shared_ptr<Communicator> comm_;
  WireFormat wire_;
  int fragment_;
  std::int64_t numel_ = 0;
  std::unique_ptr<ParameterExchange> dense_;  // float32 wire
  // bf16 / e3m0: the pseudo-gradient, then the mean, flat; the payloads sent and gathered.
  at::Tensor flat_, mine_, gathered_;
  std::vector<std::int64_t> offsets_;
  std::vector<at::Tensor> like_;
  std::uint64_t launches_ = 0;
  Work last_;
  int first_nonfinite_ = -1;                    // bf16 / e3m0
  std::shared_ptr<std::atomic<bool>> flagged_;  // bf16 / e3m0: set by the decode job
  // bf16 / e3m0 at scale: the two-phase path, its compressor (owned by it) and the mean.
  std::unique_ptr<TwoPhaseExchange> two_phase_;
  CompressorWire* wire_compressor_ = nullptr;
  at::Tensor mean_;
};

}  // namespace braid
