// Helpers that keep replicas consistent, for every strategy's attach().
#pragma once

#include <vector>

#include "collectives/communicator.h"
#include "optimizers/sync_strategy.h"

namespace braid {

// Collective. Compares parameter count, names, shapes and dtypes across ranks; throws
// ConfigError on every rank naming the first rank whose model differs from rank 0's, and the
// first parameter that differs when ranks can tell.
void check_same_model(Communicator& comm, const NamedTensors& parameters);

// Collective. Copies `root`'s parameter values to every rank (one fused broadcast per dtype).
void broadcast_parameters(Communicator& comm, const std::vector<at::Tensor>& parameters, int root);

// Collective. Makes every rank's values equal to `root`'s, sending them only when some rank's
// checksum differs: ranks that built the model from the same seed already agree, and on a slow
// link the model is the largest message a local-update run would otherwise send.
void make_replicas_identical(Communicator& comm, const std::vector<at::Tensor>& parameters,
                             int root);

// The parameters of a strategy that sends them as one flat message: float32 or float64, one dtype
// for all (a CheckError naming `who` and the first parameter otherwise).
struct FlatParameters {
  std::vector<at::Tensor> tensors;
  std::vector<std::string> names;
  at::ScalarType dtype = at::kFloat;
  std::int64_t count = 0;  // elements in all
};
FlatParameters flat_parameters(const NamedTensors& parameters, const char* who);

// Collective. A checksum of the parameter values, equal on all ranks or a CommError naming the
// ranks that differ; used after broadcasts and in tests.
std::uint64_t check_replicas_identical(Communicator& comm,
                                       const std::vector<at::Tensor>& parameters);

}  // namespace braid
