// DataParallel: the embedding API's core, and what braid's own trainer uses. Wraps the user's
// parameters in a SyncStrategy over a Communicator so that a plain LibTorch loop becomes
// data-parallel:
//
//   braid::World world(&argc, &argv);
//   braid::DataParallel dp(world, *model, options);
//   for (...) { optimizer.zero_grad(); model->forward(x).backward(); dp.step(optimizer); }
//
// Construction is collective: it checks that every rank has the same parameter names, shapes
// and dtypes, and copies rank 0's values to all ranks. The parameters must stay alive (the
// model owns them) for the DataParallel's lifetime. What a step exchanges is what each
// parameter's .grad holds when step() is called, as LibTorch would step with it: zero_grad(),
// several backward passes, gradients a phase discards (a GAN) all behave as without braid
// (optimizers/allreduce_strategy.h says how, and what it costs).
#pragma once

#include <memory>
#include <string>

#include "collectives/communicator.h"
#include "collectives/transport_slow_link.h"
#include "optimizers/compressed_exchange.h"
#include "optimizers/local_update_strategy.h"
#include "optimizers/robust_exchange.h"
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
  int coding_burst = 1;                      // coding.burst (sequential_coding)
  int coding_window = 3;                     // coding.window
  int coding_lambda = 1;                     // coding.lambda
  double coding_mu = 1.0;                    // coding.mu
  std::string nonfinite = "error";           // train.nonfinite: error | skip (nonfinite_guard.h)
  AggregatorOptions aggregator;              // sync.aggregator and its parameters (allreduce)
  AttackOptions attack;                      // inject.attack, inject.byzantine_ranks (tests)
  // Records every collective of the communicator make_communicator() builds and of its
  // channels (collectives/flight_recorder.h; runtime/flight_watch.h writes and watches it).
  std::shared_ptr<FlightRecorder> flight_recorder;
  // inject.slow_links: links made slow in the communicator's transport (for tests of the link
  // probe on one machine); empty: none.
  SlowLinks slow_links;
  Device device;  // runtime.device, resolved (select_device): CUDA
                  // parameters exchange over the NCCL transport
  // Names this DataParallel in error messages (a program with several: "generator",
  // "discriminator"); empty: "DataParallel #k", k counting constructions in this process.
  std::string name;
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
  // The module's parameters and buffers, by name (named_parameters, named_buffers).
  DataParallel(const World& world, const torch::nn::Module& module,
               DataParallelOptions options = {});
  DataParallel(std::shared_ptr<Communicator> comm, const torch::nn::Module& module,
               DataParallelOptions options = {});
  ~DataParallel();

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

  // Uneven inputs, as PyTorch DDP's join(): inside the scope a rank that runs out of data
  // leaves its loop, and the scope's end makes it shadow the steps of the ranks still
  // training (its .grad undefined: zeros, and no vote in which parameters have a gradient,
  // then the averaged step with `optimizer`), until every rank has left. Replicas and optimizer
  // states stay identical; the average divides by the world size, as DDP does by default.
  //   {
  //     auto join = dp.join(optimizer);
  //     for (auto& batch : *my_loader) { ...; dp.step(optimizer); }
  //   }
  // Collective: every rank opens the scope at the same point. Each step inside it adds one
  // allreduce of one number on a channel of its own, overlapped with the step's exchange.
  // Strategy allreduce only (ConfigError otherwise). Without a scope, a rank that stops
  // stepping early leaves the others waiting until timeout_s (a TimeoutError).
  class Join {
   public:
    Join(DataParallel& dp, torch::optim::Optimizer& optimizer);
    // Shadows the others' steps until all have left (not while an exception unwinds).
    ~Join() noexcept(false);
    Join(const Join&) = delete;
    Join& operator=(const Join&) = delete;

   private:
    DataParallel& dp_;
    torch::optim::Optimizer& optimizer_;
  };
  [[nodiscard]] Join join(torch::optim::Optimizer& optimizer) { return Join(*this, optimizer); }

  int rank() const { return comm_->rank(); }
  int size() const { return comm_->size(); }
  Communicator& communicator() { return *comm_; }
  SyncStrategy& strategy() { return *strategy_; }
  SyncStats stats() const { return strategy_->stats(); }
  const std::string& name() const { return name_; }

 private:
  // Inside a join scope: one allreduce of `active` (1 training, 0 shadowing) across ranks;
  // returns how many ranks still train.
  int vote_active(bool active);
  void run_step(torch::optim::Optimizer& optimizer);

  std::shared_ptr<Communicator> comm_;
  std::unique_ptr<SyncStrategy> strategy_;
  std::vector<at::Tensor> buffers_;
  bool broadcast_buffers_;
  std::string name_;
  std::shared_ptr<Communicator> join_channel_;  // while a join scope is open
  std::vector<at::Tensor> parameters_;
};

}  // namespace braid
