// DataParallel: the embedding API's core, and what braid's own trainer uses. Wraps the user's
// parameters in a SyncStrategy over a Communicator so that a plain LibTorch loop becomes
// data-parallel:
//
//   braid::World world(&argc, &argv);
//   braid::DataParallel dp(world, braid::named_parameters(*model), options);
//   for (...) { optimizer.zero_grad(); model->forward(x).backward(); dp.step(optimizer); }
//
// Construction is collective: it checks that every rank has the same parameter names, shapes
// and dtypes, and copies rank 0's values to all ranks. The parameters must stay alive (the
// model owns them) for the DataParallel's lifetime.
#pragma once

#include <memory>
#include <string>

#include "collectives/communicator.h"
#include "optimizers/compressed_exchange.h"
#include "optimizers/local_update_strategy.h"
#include "optimizers/sync_strategy.h"

namespace torch::nn {
class Module;
}

namespace braid {

class World;

struct DataParallelOptions {
  std::string strategy = "allreduce";        // sync.strategy
  std::string algorithm = "auto";            // sync.algorithm
  double bucket_mb = 4.0;                    // sync.bucket_mb
  bool overlap = true;                       // sync.overlap
  std::string cost_model;                    // sync.cost_model (file; empty: the defaults)
  double timeout_s = 300.0;                  // runtime.timeout_s
  bool debug_checks = false;                 // runtime.debug_checks
  int ranks_per_node = 0;                    // runtime.ranks_per_node (0: as MPI reports)
  double clip_norm = 0;                      // optimizer.clip_norm: > 0 clips the averaged gradient
  bool broadcast_buffers = true;             // sync.broadcast_buffers
  CompressedExchangeOptions compression;     // the compression: section
  OuterOptions outer;                        // the outer: section (local-update strategies)
  std::string coding_scheme = "fractional";  // coding.scheme (gradient_coding)
  int coding_stragglers = 1;                 // coding.stragglers
  std::string nonfinite = "error";           // train.nonfinite: error | skip (nonfinite_guard.h)
  Device device;                             // runtime.device, resolved (select_device): CUDA
                                             // parameters exchange over the NCCL transport
};

// The module's parameters (recursively, registration order) with their dotted names.
NamedTensors named_parameters(const torch::nn::Module& module);
// The module's buffers (running statistics and the like), the same way.
NamedTensors named_buffers(const torch::nn::Module& module);

// Collective: a Communicator over the world's transport for options.device (MPI, or NCCL for a
// CUDA device) with the options' timeout, debug
// checks and cost model. Every rank reads the cost model file; if any rank cannot, every rank
// throws ConfigError (none is left waiting).
std::shared_ptr<Communicator> make_communicator(const World& world,
                                                const DataParallelOptions& options);

class DataParallel {
 public:
  // `buffers` (named_buffers(model)) get rank 0's values at construction and, with
  // broadcast_buffers, after every step, as PyTorch DDP does, so running statistics agree.
  DataParallel(const World& world, const NamedTensors& parameters, DataParallelOptions options = {},
               const NamedTensors& buffers = {});
  // Over an existing communicator (any transport; the tests use threads).
  DataParallel(std::shared_ptr<Communicator> comm, const NamedTensors& parameters,
               DataParallelOptions options = {}, const NamedTensors& buffers = {});

  // Collective: finish this step's exchange and apply `optimizer`.
  void step(torch::optim::Optimizer& optimizer);

  // Gradient accumulation: backward passes inside the scope only add their gradients up; the
  // next backward outside it (the last micro-step) exchanges the sum, overlapped as usual:
  //   for (k = 0; k < K - 1; ++k) { auto scope = dp.no_sync(); loss(k).backward(); }
  //   loss(K - 1).backward(); dp.step(optimizer);
  // Divide each micro-step's loss by K for the mean over all micro-batches.
  class NoSync {
   public:
    explicit NoSync(SyncStrategy& strategy) : strategy_(&strategy) {
      strategy_->set_gradient_sync(false);
    }
    ~NoSync() {
      if (strategy_) strategy_->set_gradient_sync(true);
    }
    NoSync(NoSync&& other) noexcept : strategy_(other.strategy_) { other.strategy_ = nullptr; }
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;
    NoSync& operator=(NoSync&&) = delete;

   private:
    SyncStrategy* strategy_;
  };
  [[nodiscard]] NoSync no_sync() { return NoSync(*strategy_); }

  int rank() const { return comm_->rank(); }
  int size() const { return comm_->size(); }
  Communicator& communicator() { return *comm_; }
  SyncStrategy& strategy() { return *strategy_; }
  SyncStats stats() const { return strategy_->stats(); }

 private:
  std::shared_ptr<Communicator> comm_;
  std::unique_ptr<SyncStrategy> strategy_;
  std::vector<at::Tensor> buffers_;
  bool broadcast_buffers_;
};

}  // namespace braid
