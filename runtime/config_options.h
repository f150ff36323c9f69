// What a config resolves to for the DataParallel that `braid train` builds: the one mapping of
// config keys to DataParallelOptions fields, used by the trainer and by config validation (which
// runs check_strategy_options on it, so `config check` refuses what the strategy would).
#pragma once

#include "runtime/config.h"
#include "runtime/data_parallel.h"

namespace braid {

DataParallelOptions data_parallel_options(const Config& config);

}  // namespace braid
