// PowerSgdExchange: rank-r PowerSGD (Vogels, Karimireddy, Jaggi, "PowerSGD: Practical Low-Rank
// Gradient Compression for Distributed Optimization", NeurIPS 2019) as a
// BucketExchange path. Per compressed matrix M_i (this rank's) with the shared, warm-started Q:
//   mean = P^ Q^T,  P^ = orthonormalize(sum_i M_i Q),  Q = (1/P) sum_i M_i^T P^
// and this rank's delta is P^ (M_i^T P^)^T, so mean is the mean of the deltas (within rounding).
// Error feedback is the caller's (ErrorFeedback::prepare/commit around run()): no residual here.
//
// What is compressed: from the bucket's layout, each tensor of 2+ dims viewed as a matrix of
// m = shape[0] rows and n = the product of the rest columns, with r = min(rank, m, n), when
// r(m + n) <= mn / 2 (a minimum compression rate of 2, the reference package's default
// min_compression_rate). Everything else in the bucket (biases, norms, small matrices, elements
// no segment covers, a whole bucket whose layout was never set) is dense: its exact sum travels
// with the P's, divided by the rank count at the end.
//
// How it works, per bucket, two ring allreduces (sum) in the bucket's dtype:
//   round 1: one flat buffer [P_1 | P_2 | ... | dense elements], P_j = M_j Q_j (m x r);
//            each summed P_j is orthonormalised by modified Gram-Schmidt in the bucket's dtype;
//            a column whose norm after projection is at most sqrt(machine epsilon) times its
//            norm before (numerically dependent on the earlier ones, or zero) is zeroed, so a
//            rank-deficient P gives fewer columns rather than amplified rounding;
//   round 2: one flat buffer [Q_1 | Q_2 | ...], Q_j = M_j^T P^_j (n x r), summed and divided
//            by the rank count.
// Cost: a rank sends about 2(P-1)/P * (sum_j r_j(m_j + n_j) + dense) elements, against
// 2(P-1)/P * (sum_j m_j n_j + dense) for a dense ring allreduce.
//
// State: Q per (bucket, segment index in the layout), n x r in the bucket's dtype, kept after
// each step for the next (warm start; a column zeroed by the orthonormalisation is refilled from
// the initial Q so that rank can come back). The initial Q comes from SeededRng keyed by a salt,
// compression.seed, the bucket and the segment index: each entry is the sum of 12 uniforms minus
// 6 (mean 0, variance 1, plain arithmetic), so it is bitwise the same on every rank and platform.
// The summed buffers are bitwise the same on every rank, so Q stays identical everywhere: it is
// replicated state, saved as "<bucket>.q<segment>". Runs on the communication thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "collectives/allreduce.h"
#include "compression/bucket_exchange.h"

namespace braid {

class PowerSgdExchange : public BucketExchange {
 public:
  // A matrix is compressed when min_compression_rate * r(m + n) <= mn; tests pass 0 to compress
  // every matrix, even at full rank.
  explicit PowerSgdExchange(const CompressionOptions& options, double min_compression_rate = 2);
  const char* path() const override { return "powersgd"; }
  void run(OpContext& ctx, const at::Tensor& input, const PayloadContext& context, at::Tensor& mean,
           at::Tensor* delta) override;
  bool mean_of_deltas() const override { return true; }
  void set_layout(int bucket, BucketLayout layout) override;
  NamedTensors state() const override;
  // CheckpointError on a name that is no compressed matrix of a known layout, or a wrong shape.
  void load_state(const NamedTensors& state) override;
  bool state_is_replicated() const override { return true; }

  // One compressed matrix of a bucket: layout segment `segment` at `offset`, rows x cols, rank r.
  struct Matrix {
    int segment = 0;
    std::int64_t offset = 0, rows = 0, cols = 0, rank = 0;
  };
  // The compressed matrices of a layout, by offset; CheckError if they overlap.
  static std::vector<Matrix> compressed_matrices(const BucketLayout& layout, int rank,
                                                 double min_compression_rate = 2);

 private:
  at::Tensor& query(int bucket, const Matrix& matrix, const at::Tensor& like);
  at::Tensor initial_query(int bucket, const Matrix& matrix) const;

  int rank_;
  double min_rate_;
  std::uint64_t seed_;
  std::unique_ptr<Allreduce> ring_;
  std::map<int, std::vector<Matrix>> matrices_;        // by bucket
  std::map<std::pair<int, int>, at::Tensor> queries_;  // Q by (bucket, segment)
};

}  // namespace braid
