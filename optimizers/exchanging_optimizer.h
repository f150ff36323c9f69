// ExchangingOptimizer: the door between a sync strategy and an optimizer that, from some step
// on, exchanges for itself instead of consuming averaged gradients. 1-bit Adam (Tang et al.,
// ICML 2021; optimizers/onebit_adam.h) is the one user: after its warm-up it averages its
// momentum with a compressed allreduce, m = C_allreduce(b1 m + (1 - b1) g_i), and the gradient
// allreduce must stop (DeepSpeed toggles enable_backward_allreduce for the same reason).
//
// Protocol, all on the training thread unless noted:
//   strategy.host_optimizer(optimizer)   once, before the first backward: the strategy hands the
//                                        optimizer its Communicator (connect());
//   for each step:
//     backward                           the strategy's gradient hooks (autograd thread) ask
//                                        exchanges_next_step(): when true they only accumulate
//                                        locally, and no bucket is launched;
//     strategy.step(optimizer)           with exchanges_next_step() true, .grad holds this rank's
//                                        own gradient (undefined where this rank computed none)
//                                        and optimizer.step() runs its exchange by
//                                        Communicator::submit on the communication thread, in
//                                        the same order on every rank.
// exchanges_next_step() changes only inside step() and load(), so it is stable during backward.
#pragma once

#include <memory>

namespace braid {

class Communicator;

class ExchangingOptimizer {
 public:
  virtual ~ExchangingOptimizer() = default;
  // The communicator the optimizer submits its exchanges to; called once by the host.
  virtual void connect(std::shared_ptr<Communicator> comm) = 0;
  // Whether the coming step() exchanges for itself (so gradients must not be averaged).
  virtual bool exchanges_next_step() const = 0;
  // Whether every rank holds the same optimizer state (false once per-rank error buffers exist),
  // so a checkpoint can be resumed at another rank count.
  virtual bool state_is_replicated() const = 0;
  // Whether the per-rank state may start again from zero when a checkpoint is carried to another
  // rank count (1-bit Adam's compression errors, which DeepSpeed resets at every load), and the
  // request that the next load() do so: it then ignores the per-rank entries of the archive.
  virtual bool per_rank_state_may_reset() const { return false; }
  virtual void reset_per_rank_state_on_load() {}
  // Seconds step() has waited for its own exchanges so far: the host counts them as exposed
  // communication (metrics' comm_ms), as it counts its own waits.
  virtual double exchange_wait_s() const = 0;
};

}  // namespace braid
