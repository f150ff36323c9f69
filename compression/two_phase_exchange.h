// TwoPhaseExchange: the compressed allreduce of 1-bit Adam for any gathered
// compressor. With P ranks a bucket of n elements is cut into P chunks (chunk c: the c-th of P
// near-equal runs, the first n % P one element longer), and rank c owns chunk c:
//   1. every rank compresses each chunk on its own (PayloadContext part = c, stage 0);
//   2. alltoall: the owner of chunk c receives every rank's payload for it;
//   3. the owner decodes and sums them in rank order, divides by P, adds its server residual
//      (with server feedback), and compresses the result once more (stage 1); with server
//      feedback the residual becomes what this second compression dropped;
//   4. allgather: every rank receives every owner's payload and decodes it into its chunk.
// Every rank therefore ends with the bitwise same mean. A rank sends (P-1)/P of its payloads in
// step 2 and its one owner payload to the others in step 4: about 2(P-1)/P payloads' worth,
// against P-1 for the gather path.
//
// Server residuals are per bucket, chunk-sized, in the bucket's dtype; they differ per rank and
// are saved as "<bucket>.server_error".
#pragma once

#include <map>
#include <memory>

#include "compression/bucket_exchange.h"

namespace braid {

class TwoPhaseExchange : public BucketExchange {
 public:
  TwoPhaseExchange(std::unique_ptr<Compressor> compressor, bool server_feedback);
  const char* path() const override { return "two_phase"; }
  void run(OpContext& ctx, const at::Tensor& input, const PayloadContext& context, at::Tensor& mean,
           at::Tensor* delta) override;
  bool mean_of_deltas() const override { return false; }
  void set_layout(int bucket, BucketLayout layout) override {
    compressor_->set_layout(bucket, layout);
  }
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  bool state_is_replicated() const override { return !server_feedback_; }

  // Chunk c of n elements cut into `parts`: {offset, count}.
  static std::pair<std::int64_t, std::int64_t> chunk(std::int64_t n, int parts, int c);

 private:
  at::Tensor owner_mean(OpContext& ctx, const std::vector<std::vector<std::uint8_t>>& received,
                        const at::Tensor& like, PayloadContext context);

  std::unique_ptr<Compressor> compressor_;
  bool server_feedback_;
  std::map<int, at::Tensor> server_error_;  // by bucket
};

}  // namespace braid
