#include "runtime/distributed_sampler.h"

#include <ATen/core/Tensor.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <string>

#include "common/error.h"
#include "runtime/world.h"

namespace braid {
namespace {

// Checked here rather than left to DataPlan: its messages name the YAML keys of `braid train`,
// and its rank check is a CheckError, where a sampler's caller passed a value to correct.
DataPlan make_plan(std::int64_t dataset_size, int rank, int world, std::int64_t batch_size,
                   std::uint64_t seed) {
  if (world < 1) throw ConfigError(str_cat("DistributedSampler: world must be >= 1, got ", world));
  if (rank < 0 || rank >= world) {
    throw ConfigError(str_cat("DistributedSampler: rank ", rank, " is outside [0, ", world,
                              ") for a world of ", world, " ranks"));
  }
  if (batch_size < 1) {
    throw ConfigError(
        str_cat("DistributedSampler: batch_size (per rank) must be >= 1, got ", batch_size));
  }
  if (dataset_size < world * batch_size) {
    throw ConfigError(str_cat("DistributedSampler: data set of ", dataset_size,
                              " samples is smaller than one global batch of ", world,
                              " ranks x batch_size ", batch_size, " = ", world * batch_size,
                              "; lower batch_size or the rank count"));
  }
  return DataPlan(dataset_size, rank, world, batch_size, seed);
}

// The archive keys; "sampler/" keeps them apart from a caller's own in a shared archive.
constexpr const char* kEpoch = "sampler/epoch";
constexpr const char* kStep = "sampler/step";
constexpr const char* kDatasetSize = "sampler/dataset_size";
constexpr const char* kWorld = "sampler/world";
constexpr const char* kBatchSize = "sampler/batch_size";
constexpr const char* kSeed = "sampler/seed";

std::int64_t read_int(torch::serialize::InputArchive& archive, const char* key) {
  c10::IValue value;
  if (!archive.try_read(key, value) || !value.isInt()) {
    throw CheckpointError(str_cat("DistributedSampler state: no integer '", key,
                                  "' (not saved by a DistributedSampler?)"));
  }
  return value.toInt();
}

// The saved plan must be this one, or its (epoch, step) would name other samples.
void expect_same(const char* key, std::int64_t saved, std::int64_t current) {
  if (saved != current) {
    throw CheckpointError(str_cat("DistributedSampler state was saved with ", key, " ", saved,
                                  "; this sampler has ", current));
  }
}

// Step steps_per_epoch is the end of an epoch: a reset() after it starts the next one.
bool is_position(std::int64_t epoch, std::int64_t step, std::int64_t steps_per_epoch) {
  return epoch >= 0 && step >= 0 && step <= steps_per_epoch;
}

}  // namespace

DistributedSampler::DistributedSampler(std::int64_t dataset_size, int rank, int world,
                                       std::int64_t batch_size, std::uint64_t seed)
    : dataset_size_(dataset_size),
      batch_size_(batch_size),
      rank_(rank),
      world_(world),
      seed_(seed),
      plan_(make_plan(dataset_size, rank, world, batch_size, seed)) {}

DistributedSampler::DistributedSampler(std::int64_t dataset_size, const World& world,
                                       std::int64_t batch_size, std::uint64_t seed)
    : DistributedSampler(dataset_size, world.rank(), world.size(), batch_size, seed) {}

void DistributedSampler::reset(torch::optional<std::size_t> new_size) {
  if (new_size && static_cast<std::int64_t>(*new_size) != dataset_size_) {
    plan_ = make_plan(static_cast<std::int64_t>(*new_size), rank_, world_, batch_size_, seed_);
    dataset_size_ = static_cast<std::int64_t>(*new_size);
    step_ = 0;  // a step of the old plan names other samples in the new one
  }
  if (!continue_on_reset_ || step_ >= steps_per_epoch()) {
    ++epoch_;
    step_ = 0;
  }
  continue_on_reset_ = false;
}

torch::optional<std::vector<std::size_t>> DistributedSampler::next(std::size_t batch_size) {
  if (static_cast<std::int64_t>(batch_size) != batch_size_) {
    throw ConfigError(str_cat("DistributedSampler: asked for a batch of ", batch_size,
                              " samples, but it was built with batch_size ", batch_size_,
                              " per rank; give DataLoaderOptions the same batch size"));
  }
  // Reading without a reset() starts the position where it stands; a later reset() moves on.
  continue_on_reset_ = false;
  if (step_ >= steps_per_epoch()) return torch::nullopt;
  const at::Tensor indices = plan_.batch_indices(epoch_, step_++);
  const std::int64_t* p = indices.data_ptr<std::int64_t>();
  return std::vector<std::size_t>(p, p + indices.numel());
}

void DistributedSampler::save(torch::serialize::OutputArchive& archive) const {
  archive.write(kEpoch, c10::IValue(epoch_));
  archive.write(kStep, c10::IValue(step_));
  archive.write(kDatasetSize, c10::IValue(dataset_size_));
  archive.write(kWorld, c10::IValue(static_cast<std::int64_t>(world_)));
  archive.write(kBatchSize, c10::IValue(batch_size_));
  // IValue has no unsigned integer; the bits survive the round trip.
  archive.write(kSeed, c10::IValue(static_cast<std::int64_t>(seed_)));
}

void DistributedSampler::load(torch::serialize::InputArchive& archive) {
  expect_same("dataset_size", read_int(archive, kDatasetSize), dataset_size_);
  expect_same("world", read_int(archive, kWorld), world_);
  expect_same("batch_size", read_int(archive, kBatchSize), batch_size_);
  expect_same("seed", read_int(archive, kSeed), static_cast<std::int64_t>(seed_));
  const std::int64_t epoch = read_int(archive, kEpoch), step = read_int(archive, kStep);
  if (!is_position(epoch, step, steps_per_epoch())) {
    throw CheckpointError(str_cat("DistributedSampler state: epoch ", epoch, " step ", step,
                                  " is not a position in epochs of ", steps_per_epoch(), " steps"));
  }
  continue_at(epoch, step);
}

void DistributedSampler::set_epoch(std::int64_t epoch, std::int64_t step) {
  if (!is_position(epoch, step, steps_per_epoch())) {
    throw ConfigError(
        str_cat("DistributedSampler::set_epoch(", epoch, ", ", step,
                "): need epoch >= 0 and 0 <= step <= steps_per_epoch() = ", steps_per_epoch()));
  }
  continue_at(epoch, step);
}

void DistributedSampler::continue_at(std::int64_t epoch, std::int64_t step) {
  epoch_ = epoch;
  step_ = step;
  continue_on_reset_ = true;
}

}  // namespace braid
