// The pieces every local-update strategy shares (local_sgd and diloco in
// local_update_strategy.h, streaming_diloco, co2): the inner step each rank takes on its own
// gradients, the anchors the outer optimizer updates, and their restore from a checkpoint.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "optimizers/sync_strategy.h"

namespace torch::optim {
class Optimizer;
}

namespace braid {

class Communicator;

// One inner step: clips this rank's own gradients to `clip_norm` (> 0; no exchange averages
// them first) and runs the optimizer.
void local_inner_step(torch::optim::Optimizer& optimizer, const NamedTensors& params,
                      double clip_norm);

// Collective, in attach(): checks that every rank has the same model, gives every rank rank 0's
// parameters, checks they are identical, and returns the anchors (make_anchors below).
std::vector<at::Tensor> start_replicas(Communicator& comm, const NamedTensors& params);

// Copies of the parameters in at least float32 (float64 for a float64 model): a bf16
// subtraction of two nearby weights loses most of an update (ALGORITHMS.md 2.6).
std::vector<at::Tensor> make_anchors(const NamedTensors& params);

// Copies `saved[name]` into `into`; CheckpointError naming the entry if it is missing or has
// another shape (a checkpoint of another sync.strategy, say).
void restore_tensor(const std::map<std::string, at::Tensor>& saved, const std::string& name,
                    at::Tensor into);

}  // namespace braid
