// SequentialCode: the schedules of sequential gradient coding (Krishnan, Ebrahimi and Khisti,
// ICLR 2023; docs/algorithms.md "Sequential gradient coding"). Pure float64 bookkeeping, no
// communication: which minitasks each worker computes in a round, whether a straggler pattern
// stays inside the model, and how a job is decoded.
//
// Jobs and rounds: job t (the gradient of training step t) starts in round t and is decoded
// after round t + T. Each round every worker returns one result per slot, each a piece of some
// job; a straggler's results of a round are lost. Every worker (and the root) drives its own copy
// of the schedule with the same arrival sets, so all agree on every assignment.
//
// The straggler model (B, W, lambda): in any window of W consecutive rounds at most lambda
// distinct workers straggle, and a worker straggling in round r did not straggle in rounds
// r - W + 1 .. r - B (its stragglers come in bursts of at most B rounds).
//
// "sr_sgc" (selective repetition): an (n, s)-gradient code with s = ceil(B lambda / (W - 1 + B)),
// B | (W - 1); one slot; T = B. Each round every worker computes its coded task of the newest
// job, except that if v > s workers did not deliver job r - B's task in round r - B, the first
// v - s of them (lowest ranks) repeat that task instead. Load (s + 1)/n.
//
// "m_sgc" (multiplexed): a job's batch is cut into n((W-1)(lambda+1) + B) units; each worker
// owns W - 1 uncoded chunks of lambda + 1 units and one task of each of B coded groups (an
// (n, lambda)-gradient code over n units each). W - 1 + B slots, T = W - 2 + B: slot m of round
// r works on job r - m; slots m < W - 1 compute chunk m, slot W - 1 + b the coded task of group
// b, or, while the worker still misses one of its chunks of that job (it straggled), that chunk
// again (the lowest missing). Load (lambda+1)(W-1+B) / (n(B + (W-1)(lambda+1))).
//
// Both need the sum over all units of a job: the uncoded results added up (coefficient 1) plus,
// per coded group, sum_i a_i f_i over the group's survivors (GradientCode::decode).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "optimizers/gradient_code.h"

namespace braid {

// One slot of one worker in one round: a piece of job `job` (-1: the slot is idle, its job
// would start before round 0).
struct MiniTask {
  std::int64_t job = -1;
  int group = -1;          // -1: an uncoded chunk; b >= 0: the worker's task of coded group b
  int chunk = -1;          // uncoded: which of the worker's chunks
  std::vector<int> units;  // of the job's units(), ascending
  std::vector<double> weights;
};

// The valid schemes: sr_sgc, m_sgc.
const std::vector<std::string>& sequential_code_schemes();

class SequentialCode {
 public:
  // ConfigError naming the coding.* key and the values that work when the parameters are
  // invalid for n workers.
  SequentialCode(const std::string& scheme, int n, int burst, int window, int lambda);

  const std::string& scheme() const { return scheme_; }
  int workers() const { return n_; }
  int delay() const { return delay_; }  // T
  int units() const { return units_; }  // pieces a job's global batch is cut into
  int slots() const { return slots_; }  // results per worker per round
  // Units a worker computes per round over units(): the fraction of a batch it processes.
  double load() const;
  const GradientCode& code() const { return code_; }

  // Rounds recorded so far; the next round is rounds().
  std::int64_t rounds() const { return rounds_; }
  // The next round's minitasks of `worker`, one per slot (worked out once per round, by record).
  const std::vector<MiniTask>& tasks(int worker) const;
  // Whether the next round may end without the workers marked in `straggled` (size n) and keep
  // every straggler pattern so far inside the (B, W, lambda) model.
  bool conforms(const std::vector<char>& straggled) const;
  // Ends the next round: `arrived` (size n) marks the workers whose results were used.
  void record(const std::vector<char>& arrived);
  // The job whose last round was the latest recorded one (rounds() - 1 - T), or -1.
  std::int64_t due() const;
  // Decoding coefficients of job `job` (its last round recorded, and not older than the history
  // kept): [group][worker], zero for workers not used; nullopt when the results that arrived do
  // not determine the job (an uncoded chunk missing, or too few of a group).
  std::optional<std::vector<std::vector<double>>> decode(std::int64_t job) const;

 private:
  struct Round {
    std::vector<char> arrived;
    std::vector<std::vector<MiniTask>> tasks;  // [worker][slot]
  };
  const Round& round(std::int64_t r) const;
  bool straggled(std::int64_t r, int worker) const;
  // The next round's minitasks of every worker, from the history.
  std::vector<std::vector<MiniTask>> schedule() const;
  std::vector<MiniTask> sr_tasks(int worker) const;
  std::vector<MiniTask> m_tasks(int worker) const;
  MiniTask coded(std::int64_t job, int group, int worker) const;
  MiniTask chunk(std::int64_t job, int chunk, int worker) const;
  // Results of `job` delivered by `worker` so far: its chunks (m_sgc) and coded groups.
  void delivered(std::int64_t job, int worker, std::vector<char>& chunks,
                 std::vector<char>& groups) const;

  std::string scheme_;
  int n_, burst_, window_, lambda_;
  int delay_ = 0, units_ = 0, slots_ = 0, groups_ = 0, chunks_ = 0;
  GradientCode code_;
  std::int64_t rounds_ = 0;
  std::deque<Round> history_;  // the last rounds, history_.back() is round rounds_ - 1
  std::vector<std::vector<MiniTask>> next_;  // schedule() of round rounds_
};

}  // namespace braid
