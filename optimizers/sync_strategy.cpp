#include "optimizers/sync_strategy.h"

#include "collectives/communicator.h"
#include "common/error.h"

namespace braid {

std::string SyncStrategy::per_rank_state() const {
  return str_cat("the state of sync.strategy '", name(), "'");
}

BatchAssignment SyncStrategy::assign_batch(std::int64_t, int rank, int) const {
  BatchAssignment mine;
  mine.partitions = {rank};
  mine.weights = {1.0};
  return mine;
}

void SyncStrategy::host_optimizer(ExchangingOptimizer&) {
  throw ConfigError(str_cat("sync.strategy '", name(),
                            "' cannot host an optimizer that exchanges for itself "
                            "(optimizer.name onebit_adam needs sync.strategy allreduce)"));
}

}  // namespace braid
