// SequentialCodingStrategy: straggler tolerance coded across workers and across steps
// (sequential gradient coding, Krishnan, Ebrahimi and Khisti, ICLR 2023; schedules in
// optimizers/sequential_code.h).
//
// Update rule: w_{t+1} = optimizer step with the gradient g_{t-T}(w_{t-T}), the average gradient
// of step t - T's global batch at step t - T's parameters, decoded exactly (float64) T steps
// late (T = coding.burst for sr_sgc, coding.window - 2 + coding.burst for m_sgc). The first T
// steps make no update. Synchronous SGD with T-step-delayed gradients, whoever straggles.
//
// How it works, per step (round) r (one operation on the strategy's own channel):
//  - assign_batch says which units of which earlier step's batch this rank computes (its
//    minitasks); every rank holds the parameters of the last T + 1 steps and begin_partition
//    puts a minitask's job's parameters into the model and keeps each minitask's gradient apart.
//    step() sends one message of slots() gradients (plus each one's weighted loss and first
//    non-finite parameter) to rank 0, the root.
//  - The root ends the round once every rank's message arrived, or, after (1 + coding.mu) times
//    the fastest arrival (its own compute counts as one), once the ranks still missing may be
//    stragglers: the pattern stays inside the (B, W, lambda) model and the job due decodes.
//    Otherwise it waits for every rank (the paper's fall-back; rank 0 logs it). The root adds
//    up uncoded chunks as they come, keeps coded results per (job, group, rank), decodes the
//    job due in float64 and sends every rank the result: the decoded gradient and loss, and which
//    ranks it used, from which every rank's copy of the schedule takes the next round's tasks.
//  - A rank that fell behind finds results already arrived, as in gradient coding: it skips
//    computing those steps (wants_gradients) and still sends one message (unused).
// Cost per step: each rank sends slots() x the gradient; compute per rank is load() of a global
// batch (m_sgc: below gradient coding's (s + 1)/n); memory T + 1 parameter copies per rank and,
// on the root, the coded results of T + 1 jobs.
//
// Checkpoints hold the step count only: a resumed run starts the pipeline again, so its first T
// steps make no update and the jobs in flight when the checkpoint was written are not applied,
// nor are the last T jobs of a run.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "collectives/communicator.h"
#include "optimizers/coded_results.h"
#include "optimizers/nonfinite_guard.h"
#include "optimizers/sequential_code.h"
#include "optimizers/sync_strategy.h"

namespace braid {

struct SequentialCodingOptions {
  std::string scheme = "m_sgc";  // coding.scheme: sr_sgc | m_sgc
  int burst = 1;                 // coding.burst (B)
  int window = 3;                // coding.window (W)
  int lambda = 1;                // coding.lambda
  double mu = 1.0;               // coding.mu: grace after the fastest arrival, relative
  double clip_norm = 0;
  NonFinitePolicy nonfinite = NonFinitePolicy::kError;
  // Tests: the root treats these (round, rank) as stragglers whatever their timing and waits
  // for every other rank (no timing rule), while the pattern stays inside the model.
  std::function<bool(std::int64_t round, int rank)> forced_stragglers;
};

class SequentialCodingStrategy : public SyncStrategy {
 public:
  // Collective (opens a channel). ConfigError for invalid coding parameters.
  SequentialCodingStrategy(std::shared_ptr<Communicator> comm, SequentialCodingOptions options);
  ~SequentialCodingStrategy() override;
  const char* name() const override { return "sequential_coding"; }
  void attach(const NamedTensors& parameters) override;
  BatchAssignment assign_batch(std::int64_t step, int rank, int world) const override;
  bool wants_gradients() override;
  void begin_partition(std::size_t k, double loss_so_far) override;
  void set_step_loss(double loss) override { loss_ = loss; }
  std::optional<double> global_loss() const override { return global_loss_; }
  int steps_ahead() const override { return kMaxAhead; }
  void step(torch::optim::Optimizer& optimizer) override;
  void quiesce() override;
  void set_gradient_sync(bool) override {}
  bool state_is_replicated() const override { return true; }
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  SyncStats stats() const override;

  const SequentialCode& code() const { return code_; }
  std::int64_t uncomputed_steps() const { return skipped_; }
  std::int64_t fallback_rounds() const { return fallbacks_; }
  std::int64_t straggler_rounds() const { return straggled_; }

  static constexpr int kMaxAhead = 8;
  static constexpr int kMaxBacklog = 4 * kMaxAhead;

 private:
  struct Job {  // the root's partial sums of one job, float64, length() - 1 elements
    at::Tensor uncoded;
    std::map<int, std::map<int, std::pair<at::Tensor, double>>> coded;  // [group][rank]: (f, bad)
    int bad_rank = -1;
    double bad_parameter = -1;
  };
  // Elements of one slot in a message: the gradients, the weighted loss, the first non-finite
  // parameter (-1: none).
  std::int64_t slot_length() const { return count_ + 2; }
  // A message: slots, then 1 if the sender skipped the step (contents unused).
  std::int64_t message_length() const { return code_.slots() * slot_length() + 1; }
  // The result: gradients, loss, whether it holds an update, the first non-finite parameter and
  // its rank, whether the round fell back to waiting for everyone, then one arrival flag per rank.
  std::int64_t result_length() const { return count_ + 5 + code_.workers(); }
  static constexpr int kLoss = 0, kHasUpdate = 1, kBadParameter = 2, kBadRank = 3, kFallback = 4;

  std::int64_t round() const { return steps_ - origin_; }
  void take_snapshot();
  void load_parameters(std::int64_t round);
  void stash_slot(int slot, double loss);
  void run_root(OpContext& ctx, std::int64_t round);
  void run_member(OpContext& ctx, std::int64_t round);
  std::vector<char> wait_for_round(OpContext& ctx, std::int64_t round,
                                   std::vector<std::unique_ptr<std::vector<char>>>& messages,
                                   bool& fell_back);
  bool graced(std::int64_t round, std::vector<char>& used, double fastest) const;
  bool may_end(const std::vector<char>& arrived) const;
  void accumulate(int rank, const char* message);
  void decode_into(std::int64_t job, const std::vector<char>& arrived, at::Tensor result);
  void apply_result(torch::optim::Optimizer& optimizer);

  std::shared_ptr<Communicator> comm_, channel_;
  SequentialCodingOptions options_;
  SequentialCode code_;
  std::optional<NonFiniteGuard> guard_;
  std::vector<at::Tensor> params_;
  at::ScalarType dtype_ = at::kFloat;
  std::int64_t count_ = 0;
  std::int64_t steps_ = 0, origin_ = 0;             // the pipeline (re)started at step origin_
  std::vector<std::vector<at::Tensor>> snapshots_;  // [round % (T + 1)][parameter]
  std::int64_t snapshot_round_ = -1, loaded_round_ = -1;
  mutable std::vector<int> slot_of_partition_;  // this step's assignment: partition -> slot
  mutable std::vector<int> back_of_partition_;  // and -> steps back to its job
  mutable bool assigned_ = false;
  mutable std::chrono::steady_clock::time_point round_start_;
  std::chrono::steady_clock::time_point compute_done_;
  int open_slot_ = -1;
  double slot_loss_start_ = 0, loss_ = 0, loss_units_ = 0;
  bool computed_ = true;
  std::int64_t skipped_ = 0, fallbacks_ = 0, straggled_ = 0, next_fallback_log_ = 0;
  static constexpr std::int64_t kFallbackLogSteps = 100;
  std::optional<double> global_loss_;
  double exposed_comm_s_ = 0;
  std::vector<char> message_, result_;

  std::map<std::int64_t, Job> jobs_;  // the root's, channel thread only
  CodedResults results_{kMaxAhead, kMaxBacklog};
};

}  // namespace braid
