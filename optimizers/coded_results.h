// CodedResults: the star exchange that gradient coding and sequential gradient coding share.
// Every step each member sends rank 0 (the root) one message; the root goes on without the late
// ones and sends every member the step's result without waiting for the sends to complete.
//
// Members post the receives of later steps' results ahead (one operation per step on the
// strategy's channel, which the communicator checks), so a member that fell behind finds them
// arrived (results_through()) and may skip computing those steps; at most `max_ahead` are held.
// The root's receives of late messages stay posted in late() (each step's operation has its own
// tag, so a late message only ever lands in memory of its own step) and are discarded later.
// Every call happens on the channel's thread, except results_through().
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "collectives/communicator.h"
#include "collectives/partial_gather.h"
#include "optimizers/nonfinite_guard.h"

namespace torch::optim {
class Optimizer;
}

namespace braid {

// Every rank's update from a decoded result: each parameter's .grad set to its slice of the flat
// `average`; then, when a rank found a non-finite gradient (`bad_parameter` >= 0, of rank
// `bad_rank`, in the gradient of step `step`), `guard` raises or counts a skipped step; else
// the gradients are clipped to `clip_norm` (> 0) and `optimizer` steps.
void apply_decoded(const std::vector<at::Tensor>& params, const at::Tensor& average,
                   int bad_parameter, int bad_rank, std::int64_t step, NonFiniteGuard& guard,
                   double clip_norm, torch::optim::Optimizer& optimizer);

class CodedResults {
 public:
  CodedResults(int max_ahead, std::size_t max_backlog)
      : max_ahead_(max_ahead), late_(max_backlog) {}

  // Member: sends `message` (a copy: the caller reuses it) to the root, waits for step `step`'s
  // result (received ahead, or now) into `result`, and posts receives of later steps' results.
  void member_step(OpContext& ctx, std::int64_t step, const std::vector<char>& message,
                   std::vector<char>& result);
  // Root, at the start of a step's operation: discards completed sends and late messages.
  void reap_root(OpContext& ctx);
  // Root: keeps a copy of `result` in `mine` (what the root applies) and sends it to every
  // member without waiting.
  void send_result(OpContext& ctx, std::int64_t step,
                   const std::shared_ptr<std::vector<char>>& result, std::vector<char>& mine);
  // The root's receives of messages that came too late.
  LateReceives& late() { return late_; }
  // The last step whose result a member holds (-1: none); any thread.
  std::int64_t results_through() const { return results_through_.load(); }
  void restart_at(std::int64_t step) { results_through_ = step - 1; }
  // Collective: an operation `op` on `channel` that completes every send and late receive and
  // cancels the receives posted ahead (before a checkpoint, and at the end of a run).
  void quiesce(Communicator& channel, const std::string& op, const std::string& scheme);
  // For a strategy's destructor: late messages must find their receives still posted and our
  // own sends must complete before the channel cancels what is left, so every rank drains
  // (quiesce) at the end of a run; while an exception unwinds, peers may never send again, so
  // the channel is broken instead of waited on.
  void close(Communicator& channel, const std::string& op, const std::string& scheme);

 private:
  struct Posted {
    std::int64_t step = 0;
    std::shared_ptr<std::vector<char>> memory;
    RequestPtr request;
    bool done = false;
  };
  void prefetch(OpContext& ctx, std::int64_t step, std::size_t bytes);
  void reap_sends();
  void drain(OpContext& ctx);

  int max_ahead_;
  LateReceives late_;
  std::deque<Posted> sends_;    // not yet completed
  std::deque<Posted> results_;  // member: results of this and later steps, received or posted
  std::atomic<std::int64_t> results_through_{-1};
};

}  // namespace braid
