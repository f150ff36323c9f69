// The flags of mnist_plain and mnist (its braid port); the defaults are the upstream example's.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "support/fashion_mnist.h"
#include "support/flags.h"

struct Settings {
  std::int64_t epochs, steps_per_epoch, batch_size, test_batch_size, log_interval;
  std::int64_t train_limit, test_limit;
  double lr, momentum;
  std::uint64_t seed;
  std::string data_dir;
  bool check_replicas;  // the port: exit 1 unless every rank ends with the same parameters
};

inline Settings parse_settings(int argc, const char* const* argv) {
  const examples::Flags flags(argc, argv,
                              {{"--epochs", "10"},
                               {"--steps-per-epoch", "0"},  // 0: the whole epoch
                               {"--batch-size", "64"},      // per rank in the port
                               {"--test-batch-size", "1000"},
                               {"--log-interval", "10"},
                               {"--train-limit", "0"},  // > 0: the first N samples only
                               {"--test-limit", "0"},
                               {"--lr", "0.01"},
                               {"--momentum", "0.5"},
                               {"--seed", "1"},
                               {"--data", examples::kFashionMnistDir},
                               {"--check-replicas", "false"}});
  Settings s;
  s.epochs = flags.integer("--epochs");
  s.steps_per_epoch = flags.integer("--steps-per-epoch");
  if (s.steps_per_epoch <= 0) s.steps_per_epoch = std::numeric_limits<std::int64_t>::max();
  s.batch_size = flags.integer("--batch-size");
  s.test_batch_size = flags.integer("--test-batch-size");
  s.log_interval = flags.integer("--log-interval");
  s.train_limit = flags.integer("--train-limit");
  s.test_limit = flags.integer("--test-limit");
  s.lr = flags.real("--lr");
  s.momentum = flags.real("--momentum");
  s.seed = static_cast<std::uint64_t>(flags.integer("--seed"));
  s.data_dir = flags.text("--data");
  s.check_replicas = flags.on("--check-replicas");
  return s;
}
