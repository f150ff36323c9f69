// StreamingDilocoStrategy: Streaming DiLoCo (Douillard et al., "Streaming DiLoCo with overlapping
// communication: Towards a Distributed Free Lunch", arXiv 2501.18512, 2025).
//
// Update rule, for each fragment p of the parameters, every H steps at its own offset t_p:
//   send at t:         delta_r = G_p - theta_r[p]            (pseudo-gradient, anchor dtype)
//   receive at t + tau: G_p <- OuterOpt(G_p, mean_r Q(delta_r));  theta[p] <- (1 - a) G_p + a
//   theta[p]
// with Q the wire format (float32, bfloat16 or the paper's 4-bit e3m0, decoded and summed in
// float32), tau = outer.delay_steps, a = outer.mix, and theta[p] on the right the local value
// after the tau more inner steps taken while the exchange was in flight. One fragment, tau 0,
// a 0 and the float32 wire is DiLoCo.
//
// Fragments (optimizers/fragments.h): whole blocks where the model has them (the parameters
// outside every block one unit more), one tensor each otherwise, strided (unit u in fragment
// u mod F) or sequential; F must not exceed the number of units (ConfigError). Rank 0 logs what
// each fragment holds at attach().
//
// Schedule, a pure function of the step count t (after t inner steps), so every rank agrees and a
// resumed run continues it: fragment p sends at t >= 1 with t = t_p (mod H), t_p = (p + 1) H / F
// (integer division, t_p in 1..H), so the last fragment syncs at H, 2H, ... as DiLoCo does, and
// some fragment syncs every ~H/F steps (torchft's round robin; H >= F is required). It receives
// at t + tau (0 <= tau < H). Within a step the sends come before the receives, fragments in
// index order, so tau = 0 is synchronous. Up to ceil(tau F / H) fragments are in flight at once,
// each on its own exchange (optimizers/fragment_exchange.h) on a channel() of the communicator,
// so the training thread waits only when a receive finds its exchange unfinished.
//
// State ("steps", "anchor.<name>", "outer.momentum.<i>", "exchange.<p>.*" for compression's error
// feedback with the float32 wire): quiesce() waits for every exchange in flight but applies
// nothing; the received means of the fragments still in flight are saved as "inflight.<name>"
// and applied at their receive step after a resume, so a resumed run continues bit for bit.
// parameters_replicated() is true only where every fragment was just overwritten (a = 0 and all
// receive at this step: F = 1) or before the first step.
//
// Non-finite gradients (train.nonfinite; local_steps.h): an inner step with a non-finite gradient
// is not applied; each fragment's pseudo-gradient is checked when it is sent, before encoding, and
// the verdict travels in the fragment's exchange (fragment_exchange.h). At the receive of a
// flagged fragment, error raises NonFiniteError on every rank; skip drops that fragment's outer
// step (its anchors and outer momentum unchanged) and puts its parameters back on the anchors.
// Under error, a rank flags the next fragment it sends after a non-finite inner gradient, so the
// run stops at that fragment's receive, at most H/F + tau steps later.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collectives/communicator.h"
#include "compression/wire_codec.h"
#include "optimizers/fragment_exchange.h"
#include "optimizers/fragments.h"
#include "optimizers/local_update_strategy.h"
#include "optimizers/outer_optimizer.h"
#include "optimizers/sync_strategy.h"

namespace braid {

struct FragmentSchedule {
  std::int64_t H = 1, tau = 0;
  int fragments = 1;
  std::int64_t offset(int p) const { return (p + 1) * H / fragments; }
  bool sends(int p, std::int64_t t) const { return t >= offset(p) && (t - offset(p)) % H == 0; }
  bool receives(int p, std::int64_t t) const { return sends(p, t - tau); }
  // Sent by step t and not yet received.
  bool in_flight(int p, std::int64_t t) const {
    for (std::int64_t d = 0; d < tau; ++d)
      if (sends(p, t - d)) return true;
    return false;
  }
};

class StreamingDilocoStrategy : public SyncStrategy {
 public:
  // ConfigError naming the outer.* key for an invalid option.
  StreamingDilocoStrategy(std::shared_ptr<Communicator> comm, LocalUpdateOptions options);
  ~StreamingDilocoStrategy() override;
  const char* name() const override { return "streaming_diloco"; }
  void attach(const NamedTensors& parameters) override;
  void step(torch::optim::Optimizer& optimizer) override;
  void quiesce() override;
  void set_gradient_sync(bool) override {}
  bool state_is_replicated() const override;
  std::string per_rank_state() const override { return per_rank_residuals(options_.compression); }
  bool parameters_replicated() const override;
  std::vector<at::Tensor> global_parameters() const override { return anchors_; }
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  SyncStats stats() const override;

  const std::vector<at::Tensor>& anchors() const { return anchors_; }
  const FragmentSchedule& schedule() const { return schedule_; }
  // The fragment of each parameter, and the exchange of fragment p (bytes, for tests).
  const std::vector<int>& fragment_of() const { return fragment_of_; }
  const FragmentExchange& exchange(int p) const { return *exchanges_.at(p); }
  std::int64_t steps() const { return steps_; }

 private:
  void send(int p);
  void receive(int p);
  // The parameter indices of fragment p, in order.
  const std::vector<int>& members(int p) const { return members_.at(p); }

  std::shared_ptr<Communicator> comm_, channel_;
  LocalUpdateOptions options_;
  WireFormat wire_;
  FragmentSchedule schedule_;
  NamedTensors params_;
  std::vector<at::Tensor> anchors_;
  std::vector<int> fragment_of_;
  std::vector<std::vector<int>> members_;
  std::optional<OuterOptimizer> outer_;
  std::vector<std::unique_ptr<FragmentExchange>> exchanges_;
  std::vector<Work> works_;
  std::optional<NonFiniteGuard> guard_;
  NonFiniteFinding pending_;  // error: the first non-finite inner gradient not yet sent
  std::int64_t steps_ = 0;
  double exposed_comm_s_ = 0;
};

}  // namespace braid
