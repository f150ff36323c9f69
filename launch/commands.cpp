#include "launch/commands.h"

#include "common/error.h"

namespace braid {

int train_command(World&, const TrainOptions&) { throw ConfigError("train: not built yet"); }
int config_check_command(const TrainOptions&) { throw ConfigError("config: not built yet"); }

}  // namespace braid
