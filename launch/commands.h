// The `braid train` and `braid config check` subcommands.
#pragma once

#include <string>
#include <vector>

namespace braid {

class World;

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string run_dir;
};

// Exit code 0 on success; throws ConfigError for bad input, other errors for run-time failures.
int train_command(World& world, const TrainOptions& options);
// Prints the resolved config; exit code 0, or 2 with the message for a bad config.
int config_check_command(const TrainOptions& options);

}  // namespace braid
