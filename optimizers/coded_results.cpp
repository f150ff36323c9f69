#include "optimizers/coded_results.h"

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

// After <torch/types.h>: clip_grad.h uses torch::Tensor without including it.
#include <torch/nn/utils/clip_grad.h>

#include <algorithm>
#include <exception>

#include "common/error.h"
#include "common/trace.h"

namespace braid {

namespace {

// A message that already arrived may need a few progress calls (a rendezvous handshake) before
// its request completes.
bool arrived(Request& request) {
  for (int i = 0; i < 64; ++i) {
    if (request.test()) return true;
  }
  return false;
}

}  // namespace

void apply_decoded(const std::vector<at::Tensor>& params, const at::Tensor& average,
                   int bad_parameter, int bad_rank, std::int64_t step, NonFiniteGuard& guard,
                   double clip_norm, torch::optim::Optimizer& optimizer) {
  std::int64_t offset = 0;
  for (at::Tensor p : params) {
    at::Tensor slice = average.narrow(0, offset, p.numel()).view(p.sizes());
    at::Tensor& grad = p.mutable_grad();
    grad.defined() ? grad.copy_(slice) : (grad = slice.clone());
    offset += p.numel();
  }
  if (bad_parameter >= 0) {
    if (!guard.skips()) guard.raise(bad_rank, {bad_parameter, step, /*pseudo_gradient=*/false});
    guard.count_skip();
    return;  // skip: no optimizer step
  }
  if (clip_norm > 0) torch::nn::utils::clip_grad_norm_(params, clip_norm);
  trace::Scope scope("optimizer step", "compute");
  optimizer.step();
}

void CodedResults::member_step(OpContext& ctx, std::int64_t step, const std::vector<char>& message,
                               std::vector<char>& result) {
  reap_sends();
  auto copy = std::make_shared<std::vector<char>>(message);
  sends_.push_back({step, copy, ctx.send(copy->data(), copy->size(), 0)});
  if (results_.empty() || results_.front().step != step) {
    BRAID_CHECK(results_.empty(), "coded results: result of step ", results_.front().step,
                " pending at step ", step);
    auto memory = std::make_shared<std::vector<char>>(result.size());
    results_.push_back({step, memory, ctx.recv(memory->data(), memory->size(), 0)});
  }
  Posted& mine = results_.front();
  if (!mine.done) ctx.wait(*mine.request);
  result = *mine.memory;
  results_.pop_front();
  if (results_through_.load() < step) results_through_ = step;
  prefetch(ctx, step, result.size());
}

// At most one receive stays posted, max_ahead_ results held.
void CodedResults::prefetch(OpContext& ctx, std::int64_t step, std::size_t bytes) {
  for (;;) {
    if (!results_.empty() && !results_.back().done) {
      Posted& posted = results_.back();
      if (!arrived(*posted.request)) return;
      posted.done = true;
      results_through_ = posted.step;
    }
    const std::int64_t next = results_.empty() ? step + 1 : results_.back().step + 1;
    if (next - step > max_ahead_) return;
    auto memory = std::make_shared<std::vector<char>>(bytes);
    results_.push_back({next, memory,
                        ctx.recv_ahead(memory->data(), memory->size(), 0,
                                       static_cast<std::uint64_t>(next - step))});
  }
}

void CodedResults::reap_root(OpContext& ctx) {
  late_.reap(ctx.tag());
  reap_sends();
}

void CodedResults::send_result(OpContext& ctx, std::int64_t step,
                               const std::shared_ptr<std::vector<char>>& result,
                               std::vector<char>& mine) {
  mine = *result;
  for (int peer = 1; peer < ctx.size(); ++peer) {
    sends_.push_back({step, result, ctx.send(result->data(), result->size(), peer)});
  }
}

void CodedResults::reap_sends() {
  sends_.erase(std::remove_if(sends_.begin(), sends_.end(),
                              [](Posted& send) { return send.request->test(); }),
               sends_.end());
}

// Every send completed and, on the root, every late message received; a member's receive
// posted ahead is cancelled (the next operation is not a step: its tag is not that step's).
void CodedResults::drain(OpContext& ctx) {
  results_.clear();
  const bool done = poll_until(
      [&] {
        reap_sends();
        late_.reap(-1);  // no operation has tag -1: only discards what completed
        return sends_.empty() && late_.size() == 0;
      },
      ctx.deadline(), ctx.aborted());
  if (!done) {
    ctx.fail_wait(str_cat(sends_.size(), " coded-gradient sends and ", late_.size(),
                          " late coded gradients"));
  }
}

void CodedResults::quiesce(Communicator& channel, const std::string& op,
                           const std::string& scheme) {
  OpDesc desc{op, scheme, 0, DType::kUInt8, 0};
  desc.forgets_ahead = true;  // drain() first cancels the receives of results posted ahead
  Work work = channel.submit(desc, [this](OpContext& ctx) { drain(ctx); });
  work.wait();
}

void CodedResults::close(Communicator& channel, const std::string& op, const std::string& scheme) {
  if (std::uncaught_exceptions() > 0) {
    channel.abort(str_cat("the ", scheme, " strategy was destroyed by an exception"));
    return;
  }
  try {
    quiesce(channel, op, scheme);
  } catch (const std::exception&) {
    // The run already failed (the channel is broken); the channel's destructor cancels the rest.
  }
}

}  // namespace braid
