// Checkpoints: every rank writes its own file (model, optimizer, strategy state, RNG and data
// position), since strategies may hold per-rank state (error residuals). Layout:
//   <run.dir>/checkpoints/step-00000100/rank-00000.ckpt
//   <run.dir>/checkpoints/latest            text: the directory name of the newest complete one
// A file is "BRAIDCKP", a format version, the payload length and its CRC-32, then a LibTorch
// archive. Files are written to a temporary name, flushed and renamed, and `latest` moves only
// after every rank has finished, so a crash never leaves a half-written checkpoint in use. The
// two newest checkpoints are kept. Loading verifies magic, length, checksum, world size and
// every parameter's name and shape; any mismatch is a CheckpointError naming the file and the
// cause, never a silent restart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

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
};

class Checkpointer {
 public:
  Checkpointer(std::string run_dir, int rank, int world, int keep = 2);

  // Collective.
  void save(Communicator& comm, const TrainPosition& position, const torch::nn::Module& model,
            const torch::optim::Optimizer& optimizer, const SyncStrategy& strategy);
  // Restores model, optimizer, strategy and the torch RNG; nullopt when there is no checkpoint.
  std::optional<TrainPosition> load_latest(torch::nn::Module& model,
                                           torch::optim::Optimizer& optimizer,
                                           SyncStrategy& strategy);
  std::string latest_path() const;  // this rank's file of the latest checkpoint, or ""

 private:
  std::string dir_;
  int rank_, world_, keep_;
};

}  // namespace braid
