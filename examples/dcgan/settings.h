// The flags of dcgan_plain and dcgan (its braid port); the defaults are the upstream example's.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "support/fashion_mnist.h"
#include "support/flags.h"

struct Settings {
  std::int64_t epochs, steps, batch_size, log_interval, train_limit;
  std::int64_t checkpoint_every, samples_per_checkpoint;
  double lr, beta1;
  std::uint64_t seed;
  std::string data_dir, checkpoint_dir;
  bool restore;         // start from the checkpoint files in checkpoint_dir
  bool check_replicas;  // the port: exit 1 unless every rank ends with the same parameters
};

inline Settings parse_settings(int argc, const char* const* argv) {
  const examples::Flags flags(argc, argv,
                              {{"--epochs", "30"},
                               {"--steps", "0"},        // > 0: stop after this many steps in all
                               {"--batch-size", "64"},  // per rank in the port
                               {"--log-interval", "10"},
                               {"--train-limit", "0"},         // > 0: the first N samples only
                               {"--checkpoint-every", "200"},  // steps; 0: never
                               {"--samples-per-checkpoint", "10"},
                               {"--checkpoint-dir", "."},
                               {"--restore", "false"},
                               {"--lr", "2e-4"},
                               {"--beta1", "0.5"},
                               {"--seed", "1"},
                               {"--data", examples::kFashionMnistDir},
                               {"--check-replicas", "false"}});
  Settings s;
  s.epochs = flags.integer("--epochs");
  s.steps = flags.integer("--steps");
  if (s.steps <= 0) s.steps = std::numeric_limits<std::int64_t>::max();
  s.batch_size = flags.integer("--batch-size");
  s.log_interval = flags.integer("--log-interval");
  s.train_limit = flags.integer("--train-limit");
  s.checkpoint_every = flags.integer("--checkpoint-every");
  s.samples_per_checkpoint = flags.integer("--samples-per-checkpoint");
  s.checkpoint_dir = flags.text("--checkpoint-dir");
  s.restore = flags.on("--restore");
  s.lr = flags.real("--lr");
  s.beta1 = flags.real("--beta1");
  s.seed = static_cast<std::uint64_t>(flags.integer("--seed"));
  s.data_dir = flags.text("--data");
  s.check_replicas = flags.on("--check-replicas");
  return s;
}
