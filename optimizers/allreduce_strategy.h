// AllreduceStrategy: synchronous data parallelism, the DistributedDataParallel of braid.
//
// Update rule: g = (1/P) sum_r g_r on every rank, where g_r is what rank r's .grad holds when
// step() is called, then the inner optimizer step; every replica stays bitwise identical. A
// parameter whose .grad is undefined on every rank keeps none, so the optimizer leaves it alone
// (no momentum or weight-decay step), as in PyTorch DDP; an undefined .grad on some ranks counts
// as zeros there.
//
// How it works (as PyTorch DDP's Reducer): a post hook on each parameter's gradient accumulator
// runs once autograd has added a backward pass's gradient into .grad; when every parameter of a
// bucket has arrived, the bucket copies their .grad and is averaged asynchronously on the
// communication thread while backward continues. Buckets are launched strictly in index order,
// so every rank issues the same collectives in the same order even when gradients arrive in a
// different order. step() launches what is left (copying .grad as it is then), waits, writes the
// averages into .grad, clips it to `clip_norm` if set (unless the compression clipped each
// rank's gradient itself: dgc), and runs the optimizer. With a compressor or error feedback
// configured, each bucket goes through CompressedExchange instead of an allreduce. Each bucket
// carries usage slots, so knowing which parameters have a gradient anywhere costs no extra
// message. attach() broadcasts rank 0's parameters and checks a fingerprint of names and shapes.
//
// LibTorch's semantics are kept whatever the loop does between steps. Several backward passes
// before a step (a GAN's discriminator on real and fake images; its gradients from the
// generator's phase): a hook for a parameter whose bucket was sent waits for the buckets sent so
// far, drops them and counts arrivals afresh, so the buckets go again with .grad's new sum.
// zero_grad() or an in-place change of .grad after its bucket was sent, with no backward pass
// after it: step() sees that .grad is no longer the tensor and version captured and sends every
// bucket again. Inside no_sync() the hooks do nothing; the next backward pass sends the
// accumulated .grad. A compressed exchange cannot send a bucket twice in a step (its error
// feedback would take in both; centered_clip's center likewise), so there a resend is an error
// naming the parameter, its owner (options.label) and the ways out. Resends cost traffic, never
// correctness: no_sync() for the earlier backward passes of a step, or freezing parameters a phase
// must not train (before its forward pass: the graph records which parameters take a gradient),
// avoids them.
//
// A hosted ExchangingOptimizer (1-bit Adam after its warm-up) takes the exchange over: on the
// steps it claims, no bucket is launched and the optimizer steps with this rank's own .grad; its
// own exchange (on this strategy's communicator) is then all the step sends.
//
// Non-finite gradients (train.nonfinite, nonfinite_guard.h): each bucket is checked when it is
// launched, before anything encodes it (one pass over it, on the thread that launches it), and
// its non-finite slot travels with it: inside the averaged bucket for a plain allreduce, in the
// small allreduce of the slots that precedes the encoding for a compressed one (CompressedExchange
// then encodes no bucket of a flagged step, and with skip restores what earlier buckets changed).
// step() reads the summed slots: error throws on every rank after one small allgather that names
// the first rank and parameter; skip runs no optimizer step. On the steps a hosted optimizer
// exchanges for itself, step() checks the local gradients and agrees in one allgather of one
// int64 pair per rank, before the optimizer (and its compressed momentum exchange) runs.
//
// Robust aggregation (sync.aggregator other than mean, or inject.attack; robust_exchange.h):
// every gradient goes in one bucket, exchanged by RobustExchange once backward has finished
// (no overlap: the rules compare whole gradients), and its result replaces the average.
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "collectives/communicator.h"
#include "optimizers/compressed_exchange.h"
#include "optimizers/exchanging_optimizer.h"
#include "optimizers/grad_buckets.h"
#include "optimizers/nonfinite_guard.h"
#include "optimizers/robust_exchange.h"
#include "optimizers/sync_strategy.h"

namespace torch::autograd {
struct Node;
}

namespace braid {

struct AllreduceStrategyOptions {
  std::string algorithm = "auto";
  double bucket_mb = 4.0;
  bool overlap = true;   // false: all buckets are reduced in step(), after backward
  double clip_norm = 0;  // > 0: clip the averaged gradient to this global L2 norm
  // compression.name other than none, or error feedback: buckets go through CompressedExchange.
  CompressedExchangeOptions compression;
  NonFinitePolicy nonfinite = NonFinitePolicy::kError;  // train.nonfinite
  // sync.aggregator other than mean, or an inject.attack: the gradients go through
  // RobustExchange, in one bucket, once backward is done (the rules compare whole gradients).
  RobustOptions robust;
  std::string label = "DataParallel";  // who owns it, in error messages (DataParallelOptions::name)
};

class AllreduceStrategy : public SyncStrategy {
 public:
  AllreduceStrategy(std::shared_ptr<Communicator> comm, AllreduceStrategyOptions options);
  // Waits for buckets still in flight (after an exception during backward or step) so that the
  // communication thread never writes into freed memory.
  ~AllreduceStrategy() override;
  const char* name() const override { return "allreduce"; }
  void attach(const NamedTensors& parameters) override;
  void step(torch::optim::Optimizer& optimizer) override;
  void quiesce() override;
  void set_gradient_sync(bool enabled) override;
  bool state_is_replicated() const override;
  std::string per_rank_state() const override;
  bool per_rank_state_may_reset() const override;
  void reset_per_rank_state_on_load() override;
  void host_optimizer(ExchangingOptimizer& optimizer) override;
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  SyncStats stats() const override;

  std::size_t bucket_count() const { return buckets_ ? buckets_->bucket_count() : 0; }

 private:
  void on_gradient(int param);
  void refuse_resend(int param, const std::string& what) const;
  void drop_launched();
  void resend_changed_buckets();
  void launch_ready_buckets(bool force);
  void wait_launched();
  // Whether the hosted optimizer exchanges for itself in the coming step.
  bool optimizer_exchanges() const { return hosted_ && hosted_->exchanges_next_step(); }
  // Whether this step's buckets go through the compressed exchange (after the dense steps).
  bool compressing() const { return exchange_ && steps_ >= options_.compression.dense_steps; }
  void clip_gradients();
  void give_averaged_gradients();
  // Whether the ranks agreed that this step's gradients are not finite (error: throws).
  bool nonfinite_step(bool local);
  void end_step();

  std::shared_ptr<Communicator> comm_;
  AllreduceStrategyOptions options_;
  std::string algorithm_;  // options_.algorithm, or shm's when the buckets are in shared memory
  std::vector<at::Tensor> params_;
  std::vector<std::string> names_;
  std::optional<NonFiniteGuard> guard_;
  int first_nonfinite_ = -1;  // this step's first parameter found not finite on this rank
  // Each parameter's gradient accumulator with the key of the post hook registered on it.
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, std::uintptr_t>> hooks_;
  std::optional<GradBuckets> buckets_;
  std::unique_ptr<CompressedExchange> exchange_;  // null: plain allreduce of the buckets
  std::unique_ptr<RobustExchange> robust_;        // null: the mean, by allreduce
  std::int64_t steps_ = 0;   // steps taken: seeds randomised compressors, so it is state
  std::vector<Work> works_;  // one per bucket launched this step, in index order
  bool sync_ = true;         // false inside no_sync(): backward only accumulates
  std::mutex mutex_;         // hooks may run on autograd worker threads
  double exposed_comm_s_ = 0;
  std::uint64_t dense_sent_ = 0, step_start_sent_ = 0;  // bytes of the dense steps
  ExchangingOptimizer* hosted_ = nullptr;
  // Steps the hosted optimizer exchanged for itself: what it sent, and what a dense allreduce
  // of the gradients would have sent instead (for the compression ratio).
  std::uint64_t optimizer_bytes_sent_ = 0, optimizer_bytes_dense_ = 0;
};

}  // namespace braid
