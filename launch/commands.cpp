#include "launch/commands.h"

#include <fmt/core.h>

#include <filesystem>

#include "common/error.h"
#include "runtime/config.h"
#include "runtime/cost_model_file.h"
#include "runtime/data.h"
#include "runtime/doctor.h"
#include "runtime/trainer.h"
#include "runtime/world.h"

namespace braid {

namespace {
Config resolve(const TrainOptions& options) {
  std::vector<std::string> overrides = options.overrides;
  if (!options.run_dir.empty()) overrides.push_back("run.dir=" + options.run_dir);
  if (options.debug_checks) overrides.push_back("runtime.debug_checks=true");
  if (!options.progress.empty()) overrides.push_back("runtime.progress=" + options.progress);
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

int doctor_command(const std::string& run_dir, bool json) {
  try {
    const Diagnosis diagnosis = diagnose(run_dir);
    fmt::print("{}", json ? diagnosis.json() + "\n" : diagnosis.text());
    return diagnosis.ok ? 0 : 1;
  } catch (const ConfigError& e) {
    fmt::print(stderr, "braid doctor: {}\n", e.what());
    return 2;
  }
}

int config_check_command(const TrainOptions& options) {
  try {
    const Config config = resolve(options);
    // The same local checks as prepare_training, in the same order, without loading anything.
    if (!config.sync.cost_model.empty()) load_cost_model(config.sync.cost_model);
    check_data(config.data);
    if (!config.train.init_from.empty() && !std::filesystem::exists(config.train.init_from)) {
      throw ConfigError("train.init_from: " + config.train.init_from +
                        ": no such file or directory");
    }
    fmt::print("{}", config.to_yaml());
    return 0;
  } catch (const ConfigError& e) {
    fmt::print(stderr, "braid: {}\n", e.what());
    return 2;
  }
}

}  // namespace braid
