// The trainer: braid's own training loop for `braid train CONFIG.yaml`. Collective: every rank
// calls it with the same config. Start-up validates everything (config, data, model, run
// directory) on every rank before anything is created, so bad input ends all ranks with a
// ConfigError and leaves no run directory behind; ranks then compare config hashes, create the
// run directory, write the resolved config, and train with DataParallel. See docs/ for the
// run directory layout and metrics.
#pragma once

#include <cstdint>

#include "runtime/config.h"

namespace braid {

class World;

struct TrainSummary {
  std::int64_t steps = 0;
  double test_loss = 0;
  double test_accuracy = 0;
  double samples_per_s = 0;  // all ranks, over the whole run (resumed part only after resume)
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_recv = 0;
};

TrainSummary train(const World& world, const Config& config);

}  // namespace braid
