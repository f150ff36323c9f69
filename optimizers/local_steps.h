// The pieces every local-update strategy shares (local_sgd and diloco in
// local_update_strategy.h, streaming_diloco, co2): the inner step each rank takes on its own
// gradients, the anchors the outer optimizer updates, and their restore from a checkpoint.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "optimizers/nonfinite_guard.h"
#include "optimizers/sync_strategy.h"

namespace torch::optim {
class Optimizer;
}

namespace braid {

class Communicator;

// One inner step: clips this rank's own gradients to `clip_norm` (> 0; no exchange averages
// them first) and runs the optimizer, unless a gradient is not finite (one pass over them,
// first): then nothing changes and it returns that parameter's index; else -1.
int local_inner_step(torch::optim::Optimizer& optimizer, const NamedTensors& params,
                     double clip_norm);

// Non-finite gradients in the local-update methods (train.nonfinite; nonfinite_guard.h). Inner
// steps send nothing, so a rank cannot tell the others about an inner gradient without a message
// per step; instead:
//  - an inner step whose gradient is not finite is never applied (local_inner_step): this rank's
//    parameters and inner optimizer state stay as they were. Under skip it counts as a skipped
//    step and is forgotten; under error the first one since the last outer exchange is kept in
//    `pending`, and the rank flags that exchange (the run stops there, at most one round later);
//  - every outer exchange checks the pseudo-gradient before it is encoded (ParameterExchange,
//    FragmentExchange). If any rank's was not finite or flagged, error raises NonFiniteError on
//    every rank naming the earliest finding, and skip drops the round on every rank (the outer
//    state is untouched; the caller puts the parameters back on the anchors).
// Runs one inner step at `step` under that rule.
void guarded_inner_step(torch::optim::Optimizer& optimizer, const NamedTensors& params,
                        double clip_norm, std::int64_t step, NonFiniteGuard& guard,
                        NonFiniteFinding& pending);
// Whether this rank flags its coming outer exchange.
inline bool flags_exchange(const NonFiniteGuard& guard, const NonFiniteFinding& pending) {
  return !guard.skips() && pending.found();
}
// Collective, after an outer exchange that some rank flagged or whose pseudo-gradient was not
// finite: error throws on every rank, naming the earliest finding (`pending`, else this rank's
// pseudo-gradient `parameter` at `step`, -1 if none); skip counts one skipped step.
void drop_flagged_round(Communicator& comm, NonFiniteGuard& guard, NonFiniteFinding& pending,
                        int parameter, std::int64_t step);
// The parameter names, in order, for a guard.
std::vector<std::string> names_of(const NamedTensors& params);

// Collective, in attach(): checks that every rank has the same model, gives every rank rank 0's
// parameters, checks they are identical, and returns the anchors (make_anchors below).
std::vector<at::Tensor> start_replicas(Communicator& comm, const NamedTensors& params);

// Copies of the parameters in at least float32 (float64 for a float64 model): a bf16
// subtraction of two nearby weights loses most of an update.
std::vector<at::Tensor> make_anchors(const NamedTensors& params);

// Copies `saved[name]` into `into`; CheckpointError naming the entry if it is missing or has
// another shape (a checkpoint of another sync.strategy, say).
void restore_tensor(const std::map<std::string, at::Tensor>& saved, const std::string& name,
                    at::Tensor into);

}  // namespace braid
