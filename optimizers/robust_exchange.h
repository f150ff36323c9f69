// RobustExchange: the allreduce strategy's gradient exchange under a robust aggregation rule
// (sync.aggregator, robust_rules.h), without a parameter server and without gathering whole
// gradients anywhere. One collective on the communication thread per step, over the step's one
// bucket (all gradients: the distance-based rules compare whole gradients):
//   1. alltoall: the gradient (n elements) is cut into P chunks; rank c receives every rank's
//      chunk c (a bad rank's after attack_outgoing; then the owner applies attack_rows);
//   2. statistics, one ring allgather of L float64 per rank: this rank's slots (usage and
//      non-finite flags of GradBuckets, summed: the same protocol as a plain allreduce), then,
//      except under mean, which rows of its chunk are finite (P), and for the Gram-based rules
//      the partial Gram matrix of its chunk (q x q, q = P, or P + 1 with the previous aggregate
//      for centered_clip). Every rank sums them in rank order, so all hold the same numbers;
//   3. each owner aggregates its chunk in float64: coordinate-wise rules from the P rows, the
//      others as sum_i c_i row_i with the coefficients gram_rule gives for the summed Gram;
//   4. allgather of the aggregated chunks into the bucket: every rank gets the owners' bytes, so
//      replicas stay bitwise identical.
// A row with a NaN or inf in any chunk (or a squared norm that overflows) is dropped by every
// rank and counted against sync.byzantine; more such rows than that is an Error naming the ranks.
// What a rank sends as a chunk owner (statistics, the aggregated chunk) is trusted: the threat
// model, as in the papers, is a bad gradient, and inject.attack simulates bad senders only. When
// the summed non-finite slot is set (an honest rank's own gradient, train.nonfinite), nothing is
// aggregated: the strategy then skips the step or stops, as it would after an allreduce. Bytes sent
// by rank r per step: (2n - n_r - n_{r+1}) s + (P - 1) L 8 (n_c: chunk c's elements, s the element
// size): the gradient part is a ring allreduce's, 2 (P - 1)/P n s, plus the statistics
// (bytes_sent()). Compute per owner: sorting P x n/P values (coordinate rules) or a P x P Gram of
// n/P columns (P^2 n/P multiply-adds) plus O(P^3) for the coefficients (flag: per IRLS iteration).
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <memory>

#include "collectives/communicator.h"
#include "optimizers/byzantine_attack.h"
#include "optimizers/robust_rules.h"
#include "optimizers/sync_strategy.h"

namespace braid {

struct RobustOptions {
  AggregatorOptions rule;
  AttackOptions attack;
};

// Whether the gradients need RobustExchange: a rule other than mean, or an attack to simulate.
bool robust_aggregation(const RobustOptions& options);

class RobustExchange {
 public:
  // ConfigError when the rule or the attack does not fit comm's rank count.
  RobustExchange(std::shared_ptr<Communicator> comm, RobustOptions options);

  // Starts the step's exchange of `gradients` (every gradient, written back with the aggregate
  // unless the step is flagged non-finite) and `slots` (summed); both must stay alive and
  // untouched until the Work completes.
  [[nodiscard]] Work launch(at::Tensor gradients, at::Tensor slots, std::int64_t step);

  // What the exchanges sent, and what a ring allreduce of the same gradients would have sent
  // (the strategy's bytes_dense, so compression_ratio shows the statistics' overhead).
  std::uint64_t bytes_sent() const { return sent_.load(std::memory_order_relaxed); }
  std::uint64_t bytes_dense() const { return dense_.load(std::memory_order_relaxed); }

  // Whether a step's exchange changes state the next one uses (centered_clip's center), so an
  // exchange dropped and sent again in one step would count twice.
  bool keeps_state() const { return uses_center(options_.rule.name); }

  // The previous aggregate (centered_clip's center): call only when nothing is in flight.
  NamedTensors state() const;
  void load_state(const NamedTensors& state);

  // Statistics (float64) each rank contributes for `slots` slot elements.
  static std::int64_t statistics_length(const std::string& rule, int ranks, std::int64_t slots);
  // Bytes `rank` sends per step for `count` gradient elements of `element_size` bytes.
  static std::uint64_t bytes_sent(const std::string& rule, int ranks, int rank, std::int64_t count,
                                  std::int64_t slots, std::size_t element_size);

 private:
  void run(OpContext& ctx, at::Tensor gradients, at::Tensor slots, std::int64_t step);
  at::Tensor statistics(const at::Tensor& slots, const at::Tensor& finite, const at::Tensor& rows,
                        const at::Tensor& center) const;
  at::Tensor aggregate(const at::Tensor& rows, const at::Tensor& center,
                       const std::vector<std::int64_t>& kept, const at::Tensor& gram,
                       std::int64_t step) const;

  std::shared_ptr<Communicator> comm_;
  RobustOptions options_;
  at::Tensor center_;  // centered_clip: the previous aggregate (undefined until the first step)
  std::atomic<std::uint64_t> sent_{0}, dense_{0};
};

}  // namespace braid
