// The allreduce cost model's file form: a small YAML file written by `braid bench allreduce
// --calibrate FILE` and read for `sync.cost_model` and `braid bench allreduce --cost-model FILE`.
// Files live here, not in collectives/, because that layer neither parses YAML nor opens files:
// it takes a CostModel value (and the communicator shares rank 0's with every rank).
#pragma once

#include <string>

#include "collectives/cost_model.h"

namespace braid {

// Keys alpha_s, beta_s_per_byte, gamma_s_per_byte and optionally `measured` (ranks, bytes, best).
// Throws ConfigError naming the file and what is wrong with it.
CostModel load_cost_model(const std::string& path);
// Throws Error when the file cannot be written.
void save_cost_model(const CostModel& model, const std::string& path);

}  // namespace braid
