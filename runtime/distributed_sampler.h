// DistributedSampler: a torch::data sampler over braid's DataPlan, so a LibTorch DataLoader
// gives each rank its shard of every global batch.
//
// Global step s of epoch e covers entries [s * P * b, (s+1) * P * b) of a permutation seeded
// from (seed, e), the same on every rank; rank r reads the r-th block of b (runtime/data.h).
// Every rank gets steps_per_epoch() = floor(N / (P * b)) batches of exactly b indices: the last
// incomplete global batch is dropped, so no rank waits in a collective that the others skip.
//
// Why not LibTorch's DistributedRandomSampler: it shuffles with the epoch set by set_epoch(),
// and once make_data_loader owns the sampler nothing can call set_epoch() again, so every pass
// over the loader reads the same order. Here reset(), which DataLoader::begin() calls, moves to
// the next epoch by itself: the first begin() reads epoch 0, the second epoch 1, and so on.
//
// Position: (epoch(), step()). After construction, set_epoch() or load(), the next reset()
// continues at that position (unless that epoch was read to its end) instead of moving on, so
// a resumed loop reads exactly the batches the interrupted one had not. The position does not
// depend on the rank: every rank may load what rank 0 saved.
//
// A DataLoader keeps its own copy and calls it from the thread that iterates it (also with
// workers > 0); one thread at a time.
#pragma once

#include <torch/data/samplers/base.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/data.h"

namespace braid {

class World;

class DistributedSampler : public torch::data::samplers::Sampler<std::vector<std::size_t>> {
 public:
  // `batch_size` is per rank. Throws ConfigError for world < 1, a rank outside [0, world),
  // batch_size < 1, or a data set smaller than one global batch of world * batch_size.
  DistributedSampler(std::int64_t dataset_size, int rank, int world, std::int64_t batch_size,
                     std::uint64_t seed = 0);
  DistributedSampler(std::int64_t dataset_size, const World& world, std::int64_t batch_size,
                     std::uint64_t seed = 0);

  // Starts the next epoch at step 0, or continues a position set by construction, set_epoch()
  // or load(). A `new_size` other than the current one rebuilds the plan (checked as in the
  // constructor) and starts its epoch at step 0.
  void reset(torch::optional<std::size_t> new_size = torch::nullopt) override;
  // This rank's indices for the next global step; nullopt once the epoch is read. Throws
  // ConfigError unless `batch_size` is the constructor's (DataLoaderOptions(batch_size) must
  // say the same per-rank batch).
  torch::optional<std::vector<std::size_t>> next(std::size_t batch_size) override;
  // Epoch, step and the plan's shape (dataset size, world, batch size, seed); load() throws
  // CheckpointError for state saved by a sampler of another shape, naming both values.
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  // The next reset() starts `epoch` at global step `step` (0 <= step <= steps_per_epoch()):
  // for resuming a loop whose own counters say where it stopped. Throws ConfigError otherwise.
  void set_epoch(std::int64_t epoch, std::int64_t step = 0);
  // The epoch and step next() reads.
  std::int64_t epoch() const { return epoch_; }
  std::int64_t step() const { return step_; }
  std::int64_t steps_per_epoch() const { return plan_.steps_per_epoch(); }

 private:
  void continue_at(std::int64_t epoch, std::int64_t step);

  std::int64_t dataset_size_, batch_size_;
  int rank_, world_;
  std::uint64_t seed_;
  DataPlan plan_;
  std::int64_t epoch_ = 0, step_ = 0;
  // The next reset() continues at (epoch_, step_) rather than starting epoch_ + 1.
  bool continue_on_reset_ = true;
};

}  // namespace braid
