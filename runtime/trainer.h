// The trainer: braid's own training loop for `braid train CONFIG.yaml`. Two phases:
//
//  1. prepare_training(): local checks of everything that can be wrong with the input (run
//     directory, data, model), with no communication, so that bad input on any subset of ranks
//     is found before any collective. The caller (launch/) agrees on the outcome across ranks
//     in one place and ends every rank with exit 2 if any rank failed.
//  2. train(): collective. Ranks compare config hashes, rank 0 locks the run directory (one
//     job per run.dir; runtime/run_lock.h), creates it and writes the resolved config,
//     DataParallel makes replicas identical, a checkpoint is restored if train.resume is
//     auto, then the loop runs: each step asks the strategy which
//     data partitions to compute (assign_batch), runs forward and backward, and lets the
//     strategy exchange and step; training lines, evaluations and checkpoints follow their
//     periods, and every run ends with an evaluation and a checkpoint.
//
// Metrics and the run directory layout are in docs/; runtime.trace writes a Chrome trace per
// rank to <run dir>/trace/rank-RRRRR.json.
#pragma once

#include <cstdint>
#include <memory>

#include "runtime/config.h"
#include "runtime/data.h"
#include "runtime/models.h"

namespace braid {

class World;

struct TrainSummary {
  std::int64_t steps = 0;
  double test_loss = 0;
  double test_accuracy = 0;
  double samples_per_s = 0;   // all ranks, over the whole run (resumed part only after resume)
  double train_seconds = 0;   // wall time of the training loop of this run (resumed part only)
  double exposed_comm_s = 0;  // of which rank 0 waited for communication (not hidden by compute)
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_recv = 0;
  bool already_finished = false;  // resume: the run had reached its end; nothing was done
  int interrupted_by = 0;         // SIGINT or SIGTERM: stopped early with a checkpoint
};

// What phase 1 built and phase 2 trains.
struct PreparedRun {
  DataSplits data;
  std::shared_ptr<Model> model;
  int initial_weights = 0;  // tensors copied from train.init_from (0: none)
};

// Local, no communication: throws ConfigError naming the key for bad input.
PreparedRun prepare_training(const Config& config, int rank, int world_size);

// Collective: every rank calls it with the same config.
TrainSummary train(const World& world, const Config& config, PreparedRun prepared);

}  // namespace braid
