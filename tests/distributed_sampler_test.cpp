// DistributedSampler through real torch::data DataLoaders, with explicit rank and world (no
// MPI): each rank's loader is built as that rank would build it. Samples carry their own index
// as data, so what is checked is what the loader delivered, not only what the sampler returned.
#include "runtime/distributed_sampler.h"

#include <gtest/gtest.h>
#include <torch/data.h>
#include <torch/serialize.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/data.h"

namespace braid {
namespace {

using Indices = std::vector<std::int64_t>;
using Pass = std::vector<Indices>;  // one pass over a loader: a batch per step

// Sample i is (i, i).
struct IndexDataset : torch::data::datasets::Dataset<IndexDataset> {
  explicit IndexDataset(std::int64_t size) : size_(size) {}
  torch::data::Example<> get(std::size_t index) override {
    const auto i = static_cast<std::int64_t>(index);
    return {torch::tensor(i), torch::tensor(i)};
  }
  torch::optional<std::size_t> size() const override { return size_; }
  std::int64_t size_;
};

template <typename Sampler>
auto make_loader(std::int64_t dataset_size, Sampler sampler, std::int64_t batch_size) {
  return torch::data::make_data_loader(
      IndexDataset(dataset_size).map(torch::data::transforms::Stack<>()), std::move(sampler),
      torch::data::DataLoaderOptions(batch_size));
}

// One pass (begin() to end()) over `loader`: the sample indices of each batch, in order.
template <typename Loader>
Pass read_pass(Loader& loader) {
  Pass pass;
  for (const auto& batch : *loader) {
    EXPECT_TRUE(batch.data.equal(batch.target));
    const torch::Tensor data = batch.data.contiguous();
    pass.emplace_back(data.data_ptr<std::int64_t>(), data.data_ptr<std::int64_t>() + data.numel());
  }
  return pass;
}

Indices to_indices(const at::Tensor& t) {
  return {t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel()};
}

// What `passes` epochs of `world` loaders read, one loader per rank: [rank][epoch][step].
std::vector<std::vector<Pass>> read_ranks(std::int64_t size, int world, std::int64_t batch,
                                          std::uint64_t seed, int passes) {
  std::vector<std::vector<Pass>> out(world);
  for (int r = 0; r < world; ++r) {
    auto loader = make_loader(size, DistributedSampler(size, r, world, batch, seed), batch);
    for (int e = 0; e < passes; ++e) out[r].push_back(read_pass(loader));
  }
  return out;
}

// The message of the E that `f` throws; fails the test if it throws nothing.
template <typename E, typename F>
std::string message_of(F f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "nothing thrown";
  return "";
}

#define EXPECT_CONTAINS(text, part)                          \
  EXPECT_NE(std::string(text).find(part), std::string::npos) \
      << "'" << (part) << "' not in: " << (text)

// P ranks with batch b read, step by step, exactly what 1 rank with batch P * b reads, each
// rank its own block, disjoint from the others; over two epochs and odd rank counts.
TEST(DistributedSampler, RanksPartitionTheOneRankGlobalBatch) {
  const std::int64_t size = 47, batch = 3;
  const std::uint64_t seed = 7;
  for (const int world : {1, 2, 3, 5}) {
    SCOPED_TRACE("world " + std::to_string(world));
    const auto ranks = read_ranks(size, world, batch, seed, 2);
    DataPlan one_rank(size, 0, 1, world * batch, seed);
    for (int e = 0; e < 2; ++e) {
      for (int r = 0; r < world; ++r) {
        ASSERT_EQ(ranks[r][e].size(), static_cast<std::size_t>(one_rank.steps_per_epoch()));
      }
      for (std::int64_t s = 0; s < one_rank.steps_per_epoch(); ++s) {
        const Indices global = to_indices(one_rank.batch_indices(e, s));
        std::multiset<std::int64_t> all;
        for (int r = 0; r < world; ++r) {
          const Indices& mine = ranks[r][e][s];
          EXPECT_EQ(mine, Indices(global.begin() + r * batch, global.begin() + (r + 1) * batch))
              << "epoch " << e << " step " << s << " rank " << r;
          all.insert(mine.begin(), mine.end());
        }
        EXPECT_EQ(std::set<std::int64_t>(all.begin(), all.end()).size(), all.size())
            << "ranks overlap at epoch " << e << " step " << s;
        EXPECT_EQ(all, std::multiset<std::int64_t>(global.begin(), global.end()));
      }
    }
  }
}

// The point of the sampler: a loader that owns it reads a new order on every pass. LibTorch's
// DistributedRandomSampler, owned by a loader, repeats its order: the same check catches that.
TEST(DistributedSampler, EachPassOverALoaderIsReshuffled) {
  const std::int64_t size = 64, batch = 4;
  auto loader = make_loader(size, DistributedSampler(size, 0, 2, batch), batch);
  const Pass first = read_pass(loader), second = read_pass(loader), third = read_pass(loader);
  ASSERT_EQ(first.size(), 8u);
  EXPECT_NE(first, second);
  EXPECT_NE(second, third);

  auto torch_loader =
      make_loader(size, torch::data::samplers::DistributedRandomSampler(size, 2, 0, false), batch);
  const Pass torch_first = read_pass(torch_loader);
  ASSERT_EQ(torch_first.size(), 8u);
  EXPECT_EQ(torch_first, read_pass(torch_loader)) << "LibTorch's sampler no longer repeats";
}

// Data sizes that are not a multiple of P * b: every rank gets the same number of full batches.
TEST(DistributedSampler, EveryRankGetsTheSameStepCount) {
  struct Case {
    std::int64_t size, batch;
    int world;
  };
  for (const Case c : {Case{103, 5, 4}, Case{10, 3, 3}, Case{13, 1, 7}, Case{29, 2, 2}}) {
    const std::int64_t steps = c.size / (c.world * c.batch);
    for (int r = 0; r < c.world; ++r) {
      DistributedSampler sampler(c.size, r, c.world, c.batch);
      EXPECT_EQ(sampler.steps_per_epoch(), steps);
      auto loader = make_loader(c.size, sampler, c.batch);
      const Pass pass = read_pass(loader);
      EXPECT_EQ(static_cast<std::int64_t>(pass.size()), steps)
          << "size " << c.size << " world " << c.world << " rank " << r;
      for (const Indices& b : pass) EXPECT_EQ(static_cast<std::int64_t>(b.size()), c.batch);
    }
  }
}

// Everything `sampler` reads until the end of its epoch.
Pass rest_of_epoch(DistributedSampler& sampler, std::int64_t batch) {
  Pass pass;
  while (auto indices = sampler.next(batch)) pass.emplace_back(indices->begin(), indices->end());
  return pass;
}

// Saved mid-epoch, loaded into a fresh sampler (of another rank's process: the state does not
// depend on the rank) that a new loader owns: its first pass is the rest of that epoch, its
// second the next epoch, as the uninterrupted sampler reads them.
TEST(DistributedSampler, SaveLoadMidEpochResumesExactly) {
  const std::int64_t size = 50, batch = 2;
  DistributedSampler original(size, 1, 3, batch, 11);
  original.reset();
  rest_of_epoch(original, batch);  // epoch 0
  original.reset();
  original.next(batch);
  original.next(batch);  // epoch 1, steps 0 and 1 read
  torch::serialize::OutputArchive out;
  original.save(out);
  std::stringstream bytes;
  out.save_to(bytes);

  DistributedSampler saver_rank0(size, 0, 3, batch, 11), resumed(size, 1, 3, batch, 11);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  saver_rank0.load(in);
  resumed.load(in);
  EXPECT_EQ(resumed.epoch(), 1);
  EXPECT_EQ(resumed.step(), 2);
  EXPECT_EQ(saver_rank0.step(), 2);

  auto loader = make_loader(size, resumed, batch);
  const Pass expected = rest_of_epoch(original, batch);
  ASSERT_EQ(expected.size(), 6u);  // 8 steps per epoch, 2 read before saving
  EXPECT_EQ(read_pass(loader), expected);
  original.reset();
  EXPECT_EQ(read_pass(loader), rest_of_epoch(original, batch));
}

// set_epoch(e, s) before the loader owns the sampler: the first pass reads epoch e from step s.
TEST(DistributedSampler, SetEpochPicksWhereTheFirstPassStarts) {
  const std::int64_t size = 40, batch = 5;
  DistributedSampler sampler(size, 1, 2, batch, 3);
  sampler.set_epoch(4, 1);
  auto loader = make_loader(size, sampler, batch);
  DataPlan plan(size, 1, 2, batch, 3);
  Pass expected;
  for (std::int64_t s = 1; s < plan.steps_per_epoch(); ++s) {
    expected.push_back(to_indices(plan.batch_indices(4, s)));
  }
  EXPECT_EQ(read_pass(loader), expected);
  // A position at the end of an epoch starts the next one.
  sampler.set_epoch(4, sampler.steps_per_epoch());
  sampler.reset();
  EXPECT_EQ(sampler.epoch(), 5);
  EXPECT_EQ(sampler.step(), 0);
}

TEST(DistributedSampler, RejectsBadInputsNamingTheCause) {
  EXPECT_CONTAINS(message_of<ConfigError>([] { DistributedSampler(11, 0, 3, 4); }),
                  "data set of 11 samples is smaller than one global batch of 3 ranks x "
                  "batch_size 4 = 12");
  EXPECT_CONTAINS(message_of<ConfigError>([] { DistributedSampler(100, 0, 2, 0); }),
                  "batch_size (per rank) must be >= 1, got 0");
  EXPECT_CONTAINS(message_of<ConfigError>([] { DistributedSampler(100, 2, 2, 4); }),
                  "rank 2 is outside [0, 2)");
  EXPECT_CONTAINS(message_of<ConfigError>([] { DistributedSampler(100, -1, 2, 4); }),
                  "rank -1 is outside [0, 2)");
  EXPECT_CONTAINS(message_of<ConfigError>([] { DistributedSampler(100, 0, 0, 4); }),
                  "world must be >= 1, got 0");

  DistributedSampler sampler(100, 0, 2, 4);
  EXPECT_CONTAINS(message_of<ConfigError>([&] { sampler.next(8); }),
                  "asked for a batch of 8 samples, but it was built with batch_size 4");
  EXPECT_CONTAINS(message_of<ConfigError>([&] { sampler.set_epoch(0, 13); }),
                  "0 <= step <= steps_per_epoch() = 12");
  EXPECT_CONTAINS(message_of<ConfigError>([&] { sampler.reset(7); }),
                  "data set of 7 samples is smaller than one global batch");
  // A DataLoader whose batch size differs fails at its first batch with the same message.
  auto loader = make_loader(100, sampler, 5);
  EXPECT_CONTAINS(message_of<ConfigError>([&] { read_pass(loader); }),
                  "asked for a batch of 5 samples, but it was built with batch_size 4");

  // State saved by a sampler of another world size names both values.
  torch::serialize::OutputArchive out;
  DistributedSampler(100, 0, 4, 4).save(out);
  std::stringstream bytes;
  out.save_to(bytes);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  EXPECT_CONTAINS(message_of<CheckpointError>([&] { sampler.load(in); }),
                  "saved with world 4; this sampler has 2");
  torch::serialize::InputArchive empty;
  EXPECT_CONTAINS(message_of<CheckpointError>([&] { sampler.load(empty); }),
                  "no integer 'sampler/dataset_size'");
}

}  // namespace
}  // namespace braid
