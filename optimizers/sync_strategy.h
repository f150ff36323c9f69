// SyncStrategy: the one thing the training loop calls around its optimizer. A strategy decides
// WHAT replicas exchange and WHEN: synchronous gradient averaging now; compressed exchange with
// error feedback, every-H-steps outer updates (DiLoCo), in-flight fragment syncs (Streaming
// DiLoCo, CO2) and coded gradients (gradient coding), all behind this door.
//
// Life cycle, driven by the training thread (user loop or braid's trainer):
//   attach(named parameters)          once: register gradient hooks, make replicas identical
//   for each step:
//     assignment = assign_batch(step)  which data partitions this rank computes on
//     if wants_gradients():            (false: a straggler that already holds the result)
//     forward; loss.backward()          hooks hand each finished gradient to the strategy,
//                                      which may start communicating during backward
//     step(optimizer)                   finish the exchange, run the inner optimizer step
//   quiesce()                         before a checkpoint: finish every exchange in flight
// state()/load_state() carry what a checkpoint must hold beyond model and optimizer (error
// residuals, outer momenta, fragment schedules); non-tensor values (counters, positions) go as
// 0-dim int64 or float64 tensors. Bytes and exposed communication time feed the metrics. Only the
// training thread calls a strategy; its hooks run on the autograd thread.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace torch::optim {
class Optimizer;
}

namespace braid {

class Communicator;
class ExchangingOptimizer;

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Which partitions of the global batch a rank computes on at a step, each with the weight its
// loss gets (the trainer backpropagates weight * loss of each, accumulating gradients). The
// global batch of a step is cut into world-size partitions; by default rank r computes
// partition r with weight 1. Gradient coding assigns several partitions per rank.
//
// Sequential gradient coding computes, in one step, pieces of the gradients of earlier steps, each
// at that step's parameters: it cuts each step's global batch into `pieces` equal pieces (0: the
// default partitions) and says, per partition, how many steps back the batch it belongs to is
// (`steps_back`, empty: all 0). The loop then calls begin_partition(k, ...) before partition k's
// forward pass, so the strategy can set the parameters and keep the gradients apart.
struct BatchAssignment {
  std::vector<int> partitions;
  std::vector<double> weights;
  int pieces = 0;
  std::vector<int> steps_back;
};

struct SyncStats {
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_recv = 0;
  double exposed_comm_s = 0;  // time the training thread waited for communication, total
  // What the same exchanges would have sent uncompressed (dense float ring allreduce): the
  // compression ratio is bytes_dense / bytes_sent.
  std::uint64_t bytes_dense = 0;
  // Read from node peers' shared memory (shm, hierarchical): never part of the network bytes.
  std::uint64_t bytes_shared = 0;
  // Steps dropped on every rank for a non-finite gradient (train.nonfinite: skip;
  // optimizers/nonfinite_guard.h), since the strategy was built.
  std::int64_t skipped_steps = 0;
};

class SyncStrategy {
 public:
  virtual ~SyncStrategy() = default;
  virtual const char* name() const = 0;

  // Collective. `parameters` must be in the model's registration order, with the same names and
  // shapes on every rank (a CommError/ConfigError naming the first difference otherwise).
  virtual void attach(const NamedTensors& parameters) = 0;
  virtual BatchAssignment assign_batch(std::int64_t step, int rank, int world) const;
  // Collective. Completes this step's exchange and applies the inner optimizer.
  virtual void step(torch::optim::Optimizer& optimizer) = 0;

  // Straggler tolerance (gradient coding). Whether this rank computes gradients for the coming
  // step: false on a rank that fell behind and already holds the step's result, so it applies
  // the update without computing. Called by the training thread before forward.
  virtual bool wants_gradients() { return true; }
  // Called before the forward pass of partition k of this step's assignment, with the weighted
  // loss of the partitions computed so far this step (sequential gradient coding; nothing for
  // other strategies).
  virtual void begin_partition(std::size_t /*k*/, double /*loss_so_far*/) {}
  // This rank's loss for the step (sum of weight * partition loss), before step(); a strategy
  // that exchanges it returns the global mean after step() from global_loss().
  virtual void set_step_loss(double /*loss*/) {}
  virtual std::optional<double> global_loss() const { return std::nullopt; }
  // How many steps a rank may run ahead of the slowest one without waiting for it; the
  // trainer delays its own per-step agreement (interrupts) by as many steps.
  virtual int steps_ahead() const { return 0; }

  // Collective. Completes every exchange still in flight, so state() and the parameters are
  // final (a background outer round of a local-update method, say).
  virtual void quiesce() {}

  // Gradient accumulation: while disabled, backward passes only add their gradients up (no
  // exchange starts); the backward after re-enabling is the last micro-step, whose gradients
  // are exchanged with overlap as usual. DataParallel::no_sync() is the scope that uses it.
  virtual void set_gradient_sync(bool enabled) = 0;

  // Whether every rank holds the same strategy state (synchronous methods), so a checkpoint can
  // be resumed at another rank count from any rank's file.
  virtual bool state_is_replicated() const = 0;
  // What is kept per rank when state_is_replicated() is false, for messages: "the
  // compression's residuals (...)" rather than the strategy, where that is the cause.
  virtual std::string per_rank_state() const;
  // Whether that per-rank state may start again from zero when a checkpoint is carried to
  // another rank count (a hosted 1-bit Adam's error buffers; never compression residuals, which
  // hold gradient mass not yet delivered), and the request to do so at the next load.
  virtual bool per_rank_state_may_reset() const { return false; }
  virtual void reset_per_rank_state_on_load() {}
  // Whether every rank's parameters are identical now, between steps (after step() or
  // load_state()): always for synchronous methods; for local-update methods only at the end of
  // an outer round. A restored checkpoint is checked for identical replicas only when true.
  virtual bool parameters_replicated() const { return true; }
  // The global parameters, one per model parameter in order: for local-update methods the
  // outer (anchor) parameters, which their papers evaluate (Streaming DiLoCo's fragments each
  // at its last outer step); empty for synchronous methods, whose replicas are the model. Owned
  // by the strategy and changed only by step() and load_state(), on the training thread.
  virtual std::vector<at::Tensor> global_parameters() const { return {}; }

  // An optimizer that exchanges for itself from some step on (exchanging_optimizer.h: 1-bit
  // Adam): the strategy connects it to its communicator and stops averaging gradients on the
  // steps it claims. Call once, after attach() and before the first backward. The default
  // throws ConfigError: only strategies that average gradients every step can host one.
  virtual void host_optimizer(ExchangingOptimizer& optimizer);

  virtual NamedTensors state() const { return {}; }
  virtual void load_state(const NamedTensors& state) {}

  virtual SyncStats stats() const = 0;
};

}  // namespace braid
