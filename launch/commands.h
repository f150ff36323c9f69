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
  bool debug_checks = false;  // --debug-checks: runtime.debug_checks=true
  std::string progress;       // --progress auto|bar|lines: runtime.progress, unless empty
};

// Phase 1, local: resolves the config and prepares the run (ConfigError for bad input).
// Returns phase 2, collective: trains; exit code 0 on success.
std::function<int()> prepare_train_command(World& world, const TrainOptions& options);
// Prints the resolved config; exit code 0, or 2 with the message for what `braid train` would
// refuse at start on this machine: a bad config, a data.path that does not hold the named data
// set, an unreadable sync.cost_model. The run directory is not checked (a config may be
// checked for a run that exists).
int config_check_command(const TrainOptions& options);
// `braid doctor RUN_DIR [--json]`: prints runtime/doctor.h's diagnosis of a run directory. Exit
// 0 when nothing is wrong, 1 when something is (a failure, a stall, a missing record, a
// straggler), 2 when the directory or a file in it cannot be read.
int doctor_command(const std::string& run_dir, bool json);

}  // namespace braid
