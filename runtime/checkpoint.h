// Checkpoints: every rank writes its own file (model, optimizer, strategy state, RNG, data
// position and the resume fingerprint), since strategies may hold per-rank state (error
// residuals). Layout:
//   <run.dir>/checkpoints/step-00000100/rank-00000.ckpt
//   <run.dir>/checkpoints/latest            text: the directory name of the newest complete one
// A file is "BRAIDCKP", a format version, the payload length and its CRC-32, then a LibTorch
// archive.
//
// Durability: each file is written to a temporary name, fsynced, renamed and its directory
// fsynced. Ranks then agree that every rank's write succeeded; only then does rank 0 move
// `latest` (temporary file, fsync, rename, fsync of checkpoints/) and prune old checkpoints.
// So `latest` never names a step whose files are not all complete, and the previous
// checkpoint survives until the new one is. Step directories newer than `latest` are
// leftovers of a failed save and are never loaded.
//
// Resuming (collective): the steps up to `latest` are tried newest first; a step is used only
// if its file is intact on every rank, so a corrupt, truncated or missing file makes all ranks
// fall back together to the newest step valid everywhere, with a warning naming the bad file
// and the cause. If none is valid the result is a CheckpointError, never a silent restart.
// The chosen checkpoint must have been written by the same world size (CheckpointError) and a
// config with the same resume fingerprint (ConfigError naming the key, before anything is
// modified); after restoring, replicas are checked to be identical (CommError otherwise).
// Every error is raised on every rank. Only the training thread calls a Checkpointer.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/resume_fingerprint.h"

namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace braid {

class Communicator;
class SyncStrategy;

struct TrainPosition {
  std::int64_t step = 0;           // optimizer steps done
  std::int64_t epoch = 0;          // current epoch
  std::int64_t step_in_epoch = 0;  // steps done within it
  // Samples of the current epoch consumed before its step 0 by a run of another rank count
  // (a resume at a new rank count continues mid-epoch at the same sample).
  std::int64_t epoch_offset = 0;
  double time_s = 0;             // training seconds so far (metrics' time_s continues)
  std::uint64_t bytes_sent = 0;  // this rank's totals so far (metrics' bytes continue)
  std::uint64_t bytes_recv = 0;
  std::uint64_t bytes_dense = 0;   // what the exchanges would have sent uncompressed
  std::int64_t skipped_steps = 0;  // steps train.nonfinite: skip dropped so far (metrics continue)
  int world = 0;                   // restored: the rank count of the run that wrote it
};

class Checkpointer {
 public:
  // `fingerprint` is resume_fingerprint(config): stored by save(), compared by load_latest().
  Checkpointer(std::string run_dir, int rank, int world, ResumeFingerprint fingerprint,
               int keep = 2);

  // Collective. A write failure on any rank is a CheckpointError on every rank; `latest` then
  // still names the previous checkpoint.
  void save(Communicator& comm, const TrainPosition& position, const torch::nn::Module& model,
            const torch::optim::Optimizer& optimizer, const SyncStrategy& strategy);
  // Collective. Restores model, optimizer, strategy and the torch RNG from the newest checkpoint
  // valid on every rank; nullopt when there is no checkpoint.
  std::optional<TrainPosition> load_latest(Communicator& comm, torch::nn::Module& model,
                                           torch::optim::Optimizer& optimizer,
                                           SyncStrategy& strategy);
  // This rank's file of the checkpoint last saved or restored, or "".
  std::string latest_path() const { return current_; }

 private:
  std::string rank_file(std::int64_t step, int rank) const;
  // Collective: the number of rank files of a step (rank 0 counts them).
  int ranks_of(Communicator& comm, std::int64_t step) const;
  std::vector<std::int64_t> candidate_steps(Communicator& comm) const;
  void move_latest(std::int64_t step) const;
  void prune(std::int64_t newest) const;

  std::string dir_;
  int rank_, world_, keep_;
  ResumeFingerprint fingerprint_;
  std::string current_;
};

// The model's weights (parameters and buffers by dotted name) in a checkpoint, for starting a
// new run from them (train.init_from): `path` is a run directory, its checkpoints/ directory,
// a step directory or one rank's file; a directory gives rank 0's file of the step `latest`
// names. Local, no communication. A CheckpointError names the file and what is wrong.
std::vector<std::pair<std::string, at::Tensor>> checkpoint_weights(const std::string& path);
// Whether `path` is a checkpoint file (its magic), or a directory checkpoint_weights() reads.
bool is_checkpoint(const std::string& path);

}  // namespace braid
