// DistributedOptimizer: a LibTorch optimizer whose own step() is data-parallel, so a ported loop
// keeps `optimizer.step()` unchanged:
//
//   braid::DataParallel dp(world, *model);
//   braid::DistributedOptimizer<torch::optim::SGD> optimizer(dp, model->parameters(),
//                                                           torch::optim::SGDOptions(0.05));
//   for (...) { optimizer.zero_grad(); loss.backward(); optimizer.step(); }
//
// A subclass, because LibTorch's Optimizer::step() is virtual and a plain optimizer object
// cannot be made to call anything else (Horovod's DistributedOptimizer wraps for the same
// reason). step() is dp.step(*this): the exchange completes, then Opt::step() runs with the
// averaged .grad. A closure, if given, is evaluated once before the exchange (its backward pass
// is what is exchanged); optimizers that evaluate it several times per step (LBFGS) are refused.
// Everything else (param groups, state, serialization) is Opt's own.
#pragma once

#include <torch/optim/lbfgs.h>
#include <torch/optim/optimizer.h>

#include <type_traits>
#include <utility>

#include "runtime/data_parallel.h"

namespace braid {

template <class Opt>
class DistributedOptimizer : public Opt {
  static_assert(std::is_base_of_v<torch::optim::Optimizer, Opt>,
                "DistributedOptimizer<Opt>: Opt must be a torch::optim optimizer");
  static_assert(!std::is_same_v<Opt, torch::optim::LBFGS>,
                "LBFGS evaluates its closure several times per step: not data-parallel this way");

 public:
  template <class... Args>
  explicit DistributedOptimizer(DataParallel& dp, Args&&... args)
      : Opt(std::forward<Args>(args)...), dp_(dp) {}

  torch::Tensor step(torch::optim::Optimizer::LossClosure closure = nullptr) override {
    // The strategy calls step() back to apply the update: that call is Opt's.
    if (inside_) return Opt::step(nullptr);
    torch::Tensor loss;
    if (closure) loss = closure();
    inside_ = true;
    struct Reset {
      bool& flag;
      ~Reset() { flag = false; }
    } reset{inside_};
    dp_.step(*this);
    return loss;
  }

  DataParallel& data_parallel() { return dp_; }

 private:
  DataParallel& dp_;
  bool inside_ = false;
};

}  // namespace braid
