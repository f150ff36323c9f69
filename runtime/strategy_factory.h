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

// The one place where combinations of strategy, compression and exchange options are refused:
// make_strategy runs it (DataParallel, the embedding API), and `braid train` and `braid config
// check` run it on the options the config resolves to. Throws ConfigError naming the keys.
void check_strategy_options(const DataParallelOptions& options);

// Limits that depend on the job's shape, refused before a run starts: sequential_coding's code
// must fit `world_size` ranks, and its units must cut a step's global batch (batch_size x
// accumulate_steps x world_size) evenly. Throws ConfigError naming the key and values that fit.
void check_strategy_for_job(const DataParallelOptions& options, int world_size,
                            std::int64_t batch_size, std::int64_t accumulate_steps);

// Combinations that run but are known to diverge on braid's shipped configs at their default
// learning rates: one line each, for a warning at start.
std::vector<std::string> strategy_option_warnings(const DataParallelOptions& options);

// Throws ConfigError naming sync.strategy and the valid names for an unknown strategy, and
// whatever check_strategy_options refuses.
std::unique_ptr<SyncStrategy> make_strategy(std::shared_ptr<Communicator> comm,
                                            const DataParallelOptions& options);

}  // namespace braid
