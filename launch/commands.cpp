#include "launch/commands.h"

#include <fmt/core.h>

#include "common/error.h"
#include "runtime/config.h"
#include "runtime/trainer.h"
#include "runtime/world.h"

namespace braid {

namespace {
Config resolve(const TrainOptions& options) {
  std::vector<std::string> overrides = options.overrides;
  if (!options.run_dir.empty()) overrides.push_back("run.dir=" + options.run_dir);
  return load_config(options.config_path, overrides);
}
}  // namespace

std::function<int()> prepare_train_command(World& world, const TrainOptions& options) {
  auto config = std::make_shared<Config>(resolve(options));
  auto prepared =
      std::make_shared<PreparedRun>(prepare_training(*config, world.rank(), world.size()));
  return [&world, config, prepared] {
    const TrainSummary summary = train(world, *config, std::move(*prepared));
    return summary.interrupted_by ? 128 + summary.interrupted_by : 0;  // 130 SIGINT, 143 SIGTERM
  };
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
