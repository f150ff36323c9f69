// AllreduceStrategy: synchronous data parallelism, the DistributedDataParallel of braid.
//
// Update rule: g = (1/P) sum_r g_r on every rank, then the inner optimizer step; every replica
// stays bitwise identical.
//
// How it works (as PyTorch DDP's Reducer): parameters are grouped into fusion buckets of at
// most `bucket_mb` in reverse registration order (the order backward produces gradients) and
// never mixing dtypes. A hook on each parameter copies its gradient into the bucket's flat
// buffer as soon as autograd produces it; when every gradient of a bucket has arrived the bucket
// is averaged asynchronously on the communication thread while backward continues. Buckets are
// launched strictly in index order, so every rank issues the same collectives in the same
// order even when gradients arrive in a different order. step() launches what is left
// (parameters that got no gradient this step count as zeros, so an unused parameter never
// hangs the job), waits, writes the averages into .grad and runs the optimizer.
// attach() broadcasts rank 0's parameters and checks a fingerprint of names and shapes first.
#pragma once

#include <mutex>

#include "collectives/communicator.h"
#include "optimizers/sync_strategy.h"

namespace braid {

struct AllreduceStrategyOptions {
  std::string algorithm = "auto";
  double bucket_mb = 4.0;
  bool overlap = true;  // false: all buckets are reduced in step(), after backward
};

class AllreduceStrategy : public SyncStrategy {
 public:
  AllreduceStrategy(std::shared_ptr<Communicator> comm, AllreduceStrategyOptions options);
  ~AllreduceStrategy() override;
  const char* name() const override { return "allreduce"; }
  void attach(const NamedTensors& parameters) override;
  void step(torch::optim::Optimizer& optimizer) override;
  SyncStats stats() const override;

  std::size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    at::Tensor flat;
    std::vector<int> params;  // indices into params_
    int pending = 0;          // gradients not yet arrived this step
    Work work;
    bool launched = false;
  };
  void on_gradient(int param, const at::Tensor& grad);
  void launch_ready_buckets(bool force);
  at::Tensor slice_of(int param);

  std::shared_ptr<Communicator> comm_;
  AllreduceStrategyOptions options_;
  std::vector<at::Tensor> params_;
  std::vector<unsigned> hooks_;
  std::vector<int> bucket_of_;
  std::vector<std::int64_t> offset_of_;
  std::vector<bool> arrived_;
  std::vector<Bucket> buckets_;
  std::size_t next_launch_ = 0;
  std::mutex mutex_;  // hooks may run on autograd worker threads
  double exposed_comm_s_ = 0;
};

}  // namespace braid
