#include "launch/commands.h"

#include <fmt/core.h>

#include "common/error.h"
#include "runtime/config.h"
#include "runtime/trainer.h"

namespace braid {

namespace {
Config resolve(const TrainOptions& options) {
  std::vector<std::string> overrides = options.overrides;
  if (!options.run_dir.empty()) overrides.push_back("run.dir=" + options.run_dir);
  return load_config(options.config_path, overrides);
}
}  // namespace

int train_command(World& world, const TrainOptions& options) {
  train(world, resolve(options));
  return 0;
}

int config_check_command(const TrainOptions& options) {
  try {
    fmt::print("{}", resolve(options).to_yaml());
    return 0;
  } catch (const ConfigError& e) {
    fmt::print(stderr, "braid: {}\n", e.what());
    return 2;
  }
}

}  // namespace braid
