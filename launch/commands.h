// The `braid train` and `braid config check` subcommands.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace braid {

class World;

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string run_dir;
};

// Phase 1, local: resolves the config and prepares the run (ConfigError for bad input).
// Returns phase 2, collective: trains; exit code 0 on success.
std::function<int()> prepare_train_command(World& world, const TrainOptions& options);
// Prints the resolved config; exit code 0, or 2 with the message for a bad config.
int config_check_command(const TrainOptions& options);

}  // namespace braid
