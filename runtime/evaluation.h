// Evaluation on the test set, sharded over ranks: each rank evaluates indices rank, rank + P,
// ...; the loss and correct counts are summed over ranks in float64, so every rank gets the
// exact whole-test-set result.
#pragma once

#include <cstdint>
#include <vector>

#include "collectives/communicator.h"
#include "runtime/data.h"
#include "runtime/models.h"

namespace braid {

struct Evaluation {
  double loss = 0, accuracy = 0;
};

// Collective.
Evaluation evaluate(Model& model, const Dataset& test, Communicator& comm, std::int64_t batch);

// Collective: `values` summed over ranks, in float64.
std::vector<double> sum_over_ranks(Communicator& comm, std::vector<double> values);

}  // namespace braid
