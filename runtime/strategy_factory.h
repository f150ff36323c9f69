// The factory of sync strategies: the one place their names are listed (compressors are
// listed by compression/compressor.h's factory). Config validation accepts exactly these names; a
// new strategy is a new file in optimizers/ plus one line here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "collectives/communicator.h"
#include "optimizers/sync_strategy.h"

namespace braid {

struct DataParallelOptions;

// Implemented strategies; with `planned_too`, also the names reserved for methods still to
// come, which the config accepts so that it can say "not implemented yet".
const std::vector<std::string>& strategy_names(bool planned_too = false);

// How errors name a DataParallel called `name` (DataParallelOptions::name; "#k" when unnamed).
std::string data_parallel_label(const std::string& name);

// Throws ConfigError naming sync.strategy and the valid names for an unknown strategy.
std::unique_ptr<SyncStrategy> make_strategy(std::shared_ptr<Communicator> comm,
                                            const DataParallelOptions& options);

}  // namespace braid
