// Tier 1: threads as ranks. The collectives for compressed payloads and gradient coding
// (allgather_bytes, alltoall_bytes, gather_first_k), and the agreement of "auto" across ranks (rank
// 0's cost model shared by the communicator; the resolved algorithm in the debug cross-check).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <future>
#include <thread>

#include "collectives/collectives.h"
#include "collectives/transport_thread.h"
#include "common/error.h"
#include "runtime/cost_model_file.h"
#include "tests/forwarding_transport.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::spawn_ranks;

std::vector<std::uint8_t> payload_of(int rank, std::size_t size) {
  std::vector<std::uint8_t> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::uint8_t>(rank * 31 + i * 7);
  return bytes;
}

// Rank r sends sizes[r] bytes: 0 included, and one rank far more than the others.
TEST(AllgatherBytes, EveryRankReadsEveryRanksBytes) {
  const std::vector<std::size_t> sizes = {5, 0, 300000, 1, 0, 17, 64};
  CommOptions options;
  options.debug_checks = true;  // sizes differ by design: the cross-check must not object
  for (int P : {1, 2, 3, 5, 7}) {
    spawn_ranks(
        P,
        [&](Communicator& comm) {
          for (int round = 0; round < 2; ++round) {  // the communicator stays usable
            BytesResult result =
                comm.allgather_bytes(payload_of(comm.rank() + round, sizes[comm.rank()]));
            result.work.wait();
            ASSERT_EQ(result.data->size(), static_cast<std::size_t>(P));
            for (int q = 0; q < P; ++q) {
              EXPECT_EQ((*result.data)[q], payload_of(q + round, sizes[q])) << "from rank " << q;
            }
          }
        },
        options);
  }
}

// Forwards to a real transport, but rewrites the first 8-byte send after arm() into `lie`: the
// byte count of allgather_bytes as a hostile or corrupt peer would announce it. Duplicates
// (a Communicator works on its own dup()) share the armed lie.
class LyingTransport : public testing::ForwardingTransport {
 public:
  explicit LyingTransport(std::shared_ptr<Transport> inner)
      : LyingTransport(std::move(inner), std::make_shared<Lie>()) {}
  void arm(std::int64_t lie) {
    lie_->value = lie;
    lie_->armed = true;
  }
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override {
    if (bytes == sizeof(lie_->value) && lie_->armed.exchange(false)) data = &lie_->value;
    return inner_->isend(data, bytes, peer, tag);
  }

 private:
  struct Lie {
    std::atomic<bool> armed{false};
    std::int64_t value = 0;
  };
  LyingTransport(std::shared_ptr<Transport> inner, std::shared_ptr<Lie> lie)
      : ForwardingTransport(std::move(inner)), lie_(std::move(lie)) {}
  std::shared_ptr<Transport> wrap(std::shared_ptr<Transport> duplicate) override {
    return std::shared_ptr<Transport>(new LyingTransport(std::move(duplicate), lie_));
  }
  std::shared_ptr<Lie> lie_;
};

TEST(AllgatherBytes, NegativeOrHugeCountFromAPeerIsACommErrorNamingIt) {
  for (std::int64_t lie : {std::int64_t{-5}, std::int64_t{1} << 40}) {
    auto world = ThreadTransport::create_world(2);
    auto liar = std::make_shared<LyingTransport>(world[1]);
    CommOptions options;
    options.timeout = std::chrono::milliseconds(500);  // rank 1 waits for bytes that never come
    std::string message;
    bool liar_failed = false;
    spawn_ranks(2,
                [&](Communicator& comm) {
                  if (comm.rank() == 1) liar->arm(lie);
                  BytesResult result = comm.allgather_bytes(payload_of(comm.rank(), 3));
                  try {
                    result.work.wait();
                  } catch (const Error& e) {
                    if (comm.rank() == 0) message = e.what();
                    if (comm.rank() == 1) liar_failed = true;
                  }
                },
                options, {world[0], liar});
    EXPECT_NE(message.find(str_cat("rank 1 announced ", lie, " bytes")), std::string::npos)
        << message;
    EXPECT_TRUE(liar_failed) << "rank 1 cannot complete without rank 0's bytes";
  }
}

// Rank r sends rank q a payload whose size depends on both (0 included): each gets its own.
TEST(AlltoallBytes, EveryRankReadsWhatEachRankAddressedToIt) {
  auto message = [](int from, int to) {
    return payload_of(from * 7 + to, (from + 2 * to) % 5 * 3);
  };
  for (int P : {1, 2, 3, 5}) {
    spawn_ranks(P, [&](Communicator& comm) {
      std::vector<std::vector<std::uint8_t>> to_each(P), got;
      for (int q = 0; q < P; ++q) to_each[q] = message(comm.rank(), q);
      comm.submit(OpDesc{"alltoall_bytes", "pairwise", 0, DType::kUInt8},
                  [&](OpContext& ctx) { got = alltoall_bytes(ctx, to_each); })
          .wait();
      ASSERT_EQ(got.size(), static_cast<std::size_t>(P));
      for (int q = 0; q < P; ++q) EXPECT_EQ(got[q], message(q, comm.rank())) << "from rank " << q;
    });
  }
}

TEST(AlltoallBytes, NegativeOrHugeCountFromAPeerIsACommErrorNamingIt) {
  for (std::int64_t lie : {std::int64_t{-5}, std::int64_t{1} << 40}) {
    auto world = ThreadTransport::create_world(2);
    auto liar = std::make_shared<LyingTransport>(world[1]);
    CommOptions options;
    options.timeout = std::chrono::milliseconds(500);  // rank 1 waits for bytes that never come
    std::string message;
    spawn_ranks(
        2,
        [&](Communicator& comm) {
          if (comm.rank() == 1) liar->arm(lie);
          std::vector<std::vector<std::uint8_t>> to_each = {payload_of(0, 3), payload_of(1, 3)};
          try {
            comm.submit(OpDesc{"alltoall_bytes", "pairwise", 0, DType::kUInt8},
                        [&](OpContext& ctx) { alltoall_bytes(ctx, to_each); })
                .wait();
          } catch (const Error& e) {
            if (comm.rank() == 0) message = e.what();
          }
        },
        options, {world[0], liar});
    EXPECT_NE(message.find(str_cat("rank 1 announced ", lie, " bytes")), std::string::npos)
        << message;
  }
}

// Rank `late` calls gather_first_k only after the root's operation completed, so the root must
// finish with the others, then discard the late block; the next collectives are unaffected.
TEST(GatherFirstK, CompletesWithTheFirstKAndDiscardsTheLateBlock) {
  const int P = 4, k = 3, root = 1, late = 2;
  const std::int64_t n = 5;
  std::promise<void> root_done;
  std::shared_future<void> released = root_done.get_future().share();
  spawn_ranks(P, [&](Communicator& comm) {
    const int r = comm.rank();
    std::vector<float> mine(n, static_cast<float>(10 + r)), out(k * n, -1.0f);
    if (r == late) released.wait();
    FirstKResult first =
        comm.gather_first_k(Buffer{mine.data(), n}, Buffer{out.data(), k * n}, k, root);
    if (r == root) {
      try {
        first.work.wait();
      } catch (...) {
        root_done.set_value();  // never leave the late rank waiting
        throw;
      }
      root_done.set_value();
      EXPECT_EQ(*first.ranks, (std::vector<int>{0, 1, 3}));
      for (int j = 0; j < k; ++j) {
        for (std::int64_t i = 0; i < n; ++i) {
          EXPECT_EQ(out[j * n + i], 10.0f + (*first.ranks)[j]);
        }
      }
    } else {
      first.work.wait();
      EXPECT_TRUE(first.ranks->empty());
    }
    // A full gather_first_k next: the late block of the first one must not be taken for it.
    std::vector<float> again(n, static_cast<float>(100 + r)), all(P * n, -1.0f);
    FirstKResult second =
        comm.gather_first_k(Buffer{again.data(), n}, Buffer{all.data(), P * n}, P, root);
    second.work.wait();
    std::vector<double> sum(3, r);
    comm.allreduce(Buffer{sum.data(), 3, DType::kFloat64}, ReduceOp::kSum).wait();
    for (double v : sum) EXPECT_EQ(v, P * (P - 1) / 2);
    if (r == root) {
      EXPECT_EQ(*second.ranks, (std::vector<int>{0, 1, 2, 3}));
      for (int q = 0; q < P; ++q) {
        for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(all[q * n + i], 100.0f + q);
      }
    }
  });
}

// A rank that never sends costs the root one posted receive, cancelled at destruction.
TEST(GatherFirstK, ARankThatNeverSendsOnlyCostsAPostedReceive) {
  spawn_ranks(3, [](Communicator& comm) {
    if (comm.rank() == 2) return;
    std::int32_t mine = 7 + comm.rank();
    std::int32_t out[2] = {-1, -1};
    FirstKResult result =
        comm.gather_first_k(Buffer{&mine, 1, DType::kInt32}, Buffer{out, 2, DType::kInt32}, 2, 0);
    result.work.wait();
    if (comm.rank() == 0) {
      EXPECT_EQ(*result.ranks, (std::vector<int>{0, 1}));
      EXPECT_EQ(out[0], 7);
      EXPECT_EQ(out[1], 8);
    }
  });
}

TEST(GatherFirstK, BadKIsACheckError) {
  spawn_ranks(2, [](Communicator& comm) {
    float x = 0, out[2];
    EXPECT_THROW(comm.gather_first_k(Buffer{&x, 1}, Buffer{out, 2}, 3, 0).work.wait(), CheckError);
  });
}

// Each rank is created with its own cost model; the communicator gives all of them rank 0's, so
// "auto" resolves alike and passes the debug cross-check.
TEST(AutoAgreement, RanksWithDifferentCostModelsUseRankZeros) {
  const int P = 3;
  auto world = ThreadTransport::create_world(P);
  std::vector<std::vector<double>> models(P);
  std::vector<std::string> errors(P);
  std::vector<std::thread> threads;
  for (int r = 0; r < P; ++r) {
    threads.emplace_back([&, r] {
      CommOptions options;
      options.debug_checks = true;
      options.timeout = std::chrono::seconds(30);
      options.allreduce.cost_model.alpha_s = r == 0 ? 1e-9 : 1.0;  // ring vs star at 1 MiB
      options.allreduce.cost_model.measured_ranks = r;
      try {
        Communicator comm(world[r], options);
        models[r] = comm.options().allreduce.cost_model.serialize();
        std::vector<float> data(1 << 18, 1.0f);
        comm.allreduce(Buffer{data.data(), 1 << 18}, ReduceOp::kSum).wait();
        EXPECT_EQ(data[0], static_cast<float>(P));
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < P; ++r) {
    EXPECT_EQ(errors[r], "") << "rank " << r;
    EXPECT_EQ(models[r], models[0]) << "rank " << r << " kept its own cost model";
  }
  CostModel zero;
  zero.alpha_s = 1e-9;
  EXPECT_EQ(models[0], zero.serialize());
  CostModel other;
  other.alpha_s = 1.0;
  ASSERT_NE(zero.choose(P, 1 << 20), other.choose(P, 1 << 20))
      << "the test needs models that differ";
}

// The debug cross-check compares what runs: "auto" on one rank and its pick on the other agree.
TEST(AutoAgreement, DebugCheckComparesTheResolvedAlgorithm) {
  CommOptions options;
  options.debug_checks = true;
  spawn_ranks(
      2,
      [](Communicator& comm) {
        const std::string pick = comm.options().allreduce.cost_model.choose(2, 64 * 4, false);
        std::vector<float> data(64, 1.0f);
        comm.allreduce(Buffer{data.data(), 64}, ReduceOp::kSum, comm.rank() == 0 ? "auto" : pick)
            .wait();
        EXPECT_EQ(data[0], 2.0f);
      },
      options);
}

TEST(CostModelFile, RoundTripsAndRejectsBadFiles) {
  CostModel model;
  model.alpha_s = 3e-6;
  model.measured_ranks = 4;
  model.measured_bytes = {4096, 65536, 1 << 20};
  model.measured_best = {"native", "star", "ring"};
  std::string path = ::testing::TempDir() + "/cost.yaml";
  save_cost_model(model, path);
  CostModel loaded = load_cost_model(path);
  EXPECT_EQ(loaded.measured_best, model.measured_best);
  EXPECT_EQ(loaded.measured_bytes, model.measured_bytes);
  EXPECT_DOUBLE_EQ(loaded.alpha_s, model.alpha_s);
  std::ofstream(path) << "alpha_s: 1\nbeta_s_per_byte: 1\ngamma_s_per_byte: 1\n"
                      << "measured: {ranks: 2, bytes: [1, 2], best: [ring, butterfly]}\n";
  EXPECT_THROW(load_cost_model(path), ConfigError);
  EXPECT_THROW(load_cost_model(path + ".missing"), ConfigError);
}

}  // namespace
}  // namespace braid
