// Data sets and the data plan.
//
// Fashion-MNIST comes from the idx files of Debian's dataset-fashion-mnist package
// (train-images-idx3-ubyte.gz, ...; read through zlib); images become float32 [N, 1, 28, 28]
// scaled to [0, 1] then normalized with mean 0.2860 and std 0.3530, labels int64 [N].
// Text is a corpus of byte tokens: data.path itself when it is a text file, else every file
// of the directory data.path (by default the Debian fortunes; not the .dat indexes, not the
// .u8 copies), in sorted name order, concatenated. A file with a NUL byte or gzip magic in
// its first 4 KiB is not text and is refused, so a Fashion-MNIST directory is never read as
// text. The last test_fraction of the bytes is the test split. A sample is a window of
// `context` bytes (inputs, int64 [N, context]) and the same window shifted by one (targets).
// Arrays are NumPy .npy files of the user's own data (runtime/npy_arrays.h), memory-mapped.
//
// DataPlan: which samples a rank reads. Each epoch shuffles the training indices with a
// generator seeded from (seed, epoch), the same permutation on every rank. Global step s
// covers permutation entries [s * P * b, (s+1) * P * b) and rank r reads the r-th block of b,
// so P ranks with batch b see exactly the samples 1 rank with batch P * b sees. The last
// incomplete global batch of an epoch is dropped, so every rank runs the same number of steps
// and issues the same collectives for any rank count and data size.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "runtime/config.h"

namespace braid {

// Where Debian's dataset-fashion-mnist puts the files, and the normalization applied to them
// (programs that undo it, such as a GAN's tanh range, use these).
inline constexpr const char* kFashionMnistPath = "/usr/share/datasets/fashion-mnist";
inline constexpr double kFashionMean = 0.2860;
inline constexpr double kFashionStd = 0.3530;

struct Dataset {
  at::Tensor inputs;
  at::Tensor targets;
  // Token ids of 16 or 32 bits are unsigned, which LibTorch 1.13 has no dtype for: they are
  // viewed as the signed type of their width, and rows() widens a batch back to int64.
  int unsigned_bits = 0;
  std::int64_t size() const { return inputs.defined() ? inputs.size(0) : 0; }
  // Inputs and targets of the rows `indices` (int64, on the data's device), ready for a model.
  std::pair<at::Tensor, at::Tensor> rows(const at::Tensor& indices) const;
};

struct DataSplits {
  Dataset train, test;
  std::int64_t num_classes = 0;  // 10 for Fashion-MNIST, 256 for bytes
};

// "data.path '<path>' (data.name <name>)": how every data error says where it is.
std::string data_location(const std::string& path, const std::string& data_name);

// The names load_data reads: fashion_mnist, text, arrays, tokens.
const std::vector<std::string>& dataset_names();

// The cheap start-up check of what load_data will read, without reading it: data.path exists,
// is of the right kind (directory or file) and holds the named data set's files (text files
// for text). Throws ConfigError naming data.path, data.name and what was expected there, so
// `braid config check` refuses what `braid train` would.
void check_data(const DataConfig& data);

// check_data, then the loading. Throws ConfigError naming data.path and the file when
// something is missing, unreadable or malformed, and naming data.name for an unknown data set.
DataSplits load_data(const DataConfig& data, const ModelConfig& model);

class DataPlan {
 public:
  DataPlan(std::int64_t samples, int rank, int world, std::int64_t batch_size, std::uint64_t seed);
  std::int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // Indices (int64) this rank reads at step `step` (0-based within the epoch) of `epoch`.
  at::Tensor batch_indices(std::int64_t epoch, std::int64_t step) {
    return partition_indices(epoch, step, rank_);
  }
  // The global batch of a step cut into `world` partitions of batch_size samples; partition r
  // is what rank r reads by default. Strategies that assign other partitions (gradient coding)
  // name them by index. `offset` samples at the start of the epoch are skipped (a run resumed
  // at another rank count continues where the old one stopped, mid-epoch).
  at::Tensor partition_indices(std::int64_t epoch, std::int64_t step, int partition,
                               std::int64_t offset = 0);
  // The global batch of a step (world * batch_size samples) cut into `pieces` equal pieces
  // instead (sequential gradient coding); pieces must divide it.
  at::Tensor piece_indices(std::int64_t epoch, std::int64_t step, int piece, int pieces,
                           std::int64_t offset = 0);
  // Steps in an epoch whose first `offset` samples were consumed already.
  std::int64_t steps_in_epoch(std::int64_t offset) const {
    return (samples_ - offset) / (world_ * batch_size_);
  }

 private:
  // The shuffled order of `epoch`, after checking that `step` exists in it.
  const at::Tensor& permutation(std::int64_t epoch, std::int64_t step, std::int64_t offset);
  std::int64_t samples_, batch_size_, steps_per_epoch_;
  int rank_, world_;
  std::uint64_t seed_;
  std::int64_t cached_epoch_ = -1;
  at::Tensor permutation_;
};

// Test-set shard of this rank for evaluation: indices rank, rank + P, rank + 2P, ...
at::Tensor eval_indices(std::int64_t samples, int rank, int world);

}  // namespace braid
