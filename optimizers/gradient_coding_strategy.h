// GradientCodingStrategy: straggler-tolerant synchronous SGD by gradient coding (Tandon, Lei,
// Dimakis, Karampatziakis, ICML 2017).
//
// Update rule: g = (1/n) sum_j g_j, the average of the n partition gradients of the global
// batch, exactly what synchronous allreduce computes for the same batch, but decoded from the
// first n - s coded gradients to arrive: g = (1/n) sum_{i in I} a_i f_i with
// f_i = sum_j B_ij g_j (optimizers/gradient_code.h).
//
// How it works, per step t (one operation on the strategy's own channel, tag from its
// sequence number):
//  - assign_batch gives rank i the s + 1 partitions of row i of B with weights B_ij; the
//    trainer backpropagates sum_j B_ij loss_j, so .grad holds f_i. step() packs f_i and the
//    weighted loss into one message of S elements.
//  - Rank 0 (the root) gathers the first n - s messages (its own included; gather_first_k),
//    decodes in float64, and sends the result to every rank without waiting for those sends:
//    a late rank picks its result up when it gets there. Every rank, the root included, applies
//    the root's bytes, so replicas stay bitwise identical whoever was late.
//  - A rank that falls behind (a straggler) finds the results of the steps it missed already
//    arrived (each operation posts the receive of the next step's result ahead and tests it);
//    wants_gradients() then says "skip": it applies the result without computing and still
//    sends one message (contents unused), so the root's posted receive for it completes and
//    nothing is left posted. Late messages land in receives of their own step (tags differ per
//    step) and are discarded (LateReceives); they are never counted twice.
//  - Fewer than n - s arrivals by the deadline: TimeoutError naming the step's operation.
// Cost per step: every rank sends S and receives S; the root receives up to (n - 1) S and sends
// (n - 1) S; compute is (s + 1)x that of synchronous training. The root never skips: a slow
// rank 0 slows every step (put injected stragglers on other ranks).
//
// Non-finite gradients (train.nonfinite): each rank checks its coded gradient when it packs it
// (one pass) and writes its first non-finite parameter (or -1) into its message; the root writes
// the first such rank (lowest, among the n - s messages it used) and parameter into the result,
// which every rank applies: error raises NonFiniteError on every rank, skip runs no optimizer
// step. No message of its own: two more elements per message. A message the root did not use
// (a straggler's) cannot spoil the step, so it is not reported.
//
// Threads: the training thread calls everything; transport requests are touched only on the
// channel's thread. Parameters without a gradient count as zero gradients. Backward passes add
// up in .grad until step() (no_sync needs nothing); hosted optimizers are not supported.
#pragma once

#include <memory>
#include <vector>

#include "collectives/communicator.h"
#include "optimizers/coded_results.h"
#include "optimizers/gradient_code.h"
#include "optimizers/nonfinite_guard.h"
#include "optimizers/sync_strategy.h"

namespace braid {

struct GradientCodingOptions {
  std::string scheme = "fractional";
  int stragglers = 1;
  double clip_norm = 0;  // > 0: clip the decoded gradient to this global L2 norm
  NonFinitePolicy nonfinite = NonFinitePolicy::kError;  // train.nonfinite
};

class GradientCodingStrategy : public SyncStrategy {
 public:
  // Collective (opens a channel). ConfigError if (scheme, world size, stragglers) is invalid,
  // naming the straggler counts that would work.
  GradientCodingStrategy(std::shared_ptr<Communicator> comm, GradientCodingOptions options);
  ~GradientCodingStrategy() override;
  const char* name() const override { return "gradient_coding"; }
  void attach(const NamedTensors& parameters) override;
  BatchAssignment assign_batch(std::int64_t step, int rank, int world) const override;
  bool wants_gradients() override;
  void set_step_loss(double loss) override { loss_ = loss; }
  std::optional<double> global_loss() const override { return global_loss_; }
  int steps_ahead() const override { return kMaxAhead; }
  void step(torch::optim::Optimizer& optimizer) override;
  void quiesce() override;
  void set_gradient_sync(bool enabled) override;
  bool state_is_replicated() const override { return true; }
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  SyncStats stats() const override;

  const GradientCode& code() const { return code_; }
  // Steps this rank applied without computing, because their result had already arrived.
  std::int64_t uncomputed_steps() const { return skipped_; }

  // Results a rank may hold ahead of its own step (bounds the memory of a straggler).
  static constexpr int kMaxAhead = 8;
  // Receives (with a buffer each) the root keeps posted for one member whose coded gradients have
  // not come. The trainer lets no rank run more than kMaxAhead steps ahead of another, so a longer
  // backlog means a member that hangs without crashing: LateReceives throws a CommError naming
  // it, instead of keeping one more buffer every step.
  static constexpr int kMaxBacklog = 4 * kMaxAhead;

 private:
  void run_root(OpContext& ctx, std::int64_t step);
  void run_member(OpContext& ctx, std::int64_t step);
  void pack_gradients();
  void apply_result(torch::optim::Optimizer& optimizer);
  // Elements of a message and of a result: the gradients, the loss (at count_), a parameter
  // index (a message: the sender's first non-finite gradient; the result: the finding's, or -1),
  // and the result's finding's rank.
  std::int64_t length() const { return count_ + 3; }
  static constexpr int kParameterSlot = 1, kRankSlot = 2;  // after the loss

  std::shared_ptr<Communicator> comm_, channel_;
  GradientCodingOptions options_;
  GradientCode code_;
  std::optional<NonFiniteGuard> guard_;
  std::vector<at::Tensor> params_;
  at::ScalarType dtype_ = at::kFloat;
  std::int64_t count_ = 0;  // gradient elements; messages hold length()
  std::int64_t steps_ = 0;
  mutable bool assigned_ = false;  // assign_batch was called: the loop computes coded gradients
  std::int64_t skipped_ = 0;
  bool computed_ = true;
  double loss_ = 0;
  std::optional<double> global_loss_;
  double exposed_comm_s_ = 0;
  std::vector<char> coded_;   // this rank's message of the current step
  std::vector<char> result_;  // the decoded average of the current step

  CodedResults results_{kMaxAhead, kMaxBacklog};
};

}  // namespace braid
