// Tier 1: threads as ranks. Every allreduce algorithm against closed-form results over rank
// counts 1..16, element counts (0, 1, fewer than P, not divisible by P, >= 4M), every dtype and
// op; the other collectives; byte counters; error paths.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "collectives/collectives.h"
#include "collectives/reduce.h"
#include "collectives/transport_faulty.h"
#include "collectives/verify.h"
#include "common/error.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::spawn_ranks;

const DType kDTypes[] = {DType::kFloat32,  DType::kFloat64, DType::kFloat16,
                         DType::kBFloat16, DType::kInt32,   DType::kInt64};
const ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin};
const std::string kAlgorithms[] = {"ring", "star", "rhd", "auto"};

// Runs every (dtype, op, count) combination through `algorithm` on `ranks` threads and expects
// the closed-form result on every rank.
void check_grid(const std::string& algorithm, int ranks, const std::vector<std::int64_t>& counts,
                const std::vector<DType>& dtypes, const std::vector<ReduceOp>& ops) {
  CommOptions options;
  options.allreduce.segment_bytes = 4096;  // many segments even for modest counts
  spawn_ranks(
      ranks,
      [&](Communicator& comm) {
        for (std::int64_t count : counts) {
          for (DType dtype : dtypes) {
            std::vector<char> memory(count * dtype_size(dtype) + 1);
            Buffer buffer{memory.data(), count, dtype};
            for (ReduceOp op : ops) {
              fill_pattern(buffer, comm.rank());
              comm.allreduce(buffer, op, algorithm).wait();
              EXPECT_EQ(count_wrong(buffer, op, ranks), 0)
                  << algorithm << " P=" << ranks << " rank " << comm.rank() << " count " << count
                  << " " << dtype_name(dtype) << " " << reduce_op_name(op);
            }
          }
        }
      },
      options);
}

class AllreduceGrid : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(AllreduceGrid, MatchesClosedForm) {
  const auto& [algorithm, ranks] = GetParam();
  std::int64_t not_divisible = 97 * ranks + (ranks > 1 ? 1 : 0);
  check_grid(algorithm, ranks, {0, 1, std::max(ranks - 1, 1), not_divisible},
             std::vector<DType>(std::begin(kDTypes), std::end(kDTypes)),
             std::vector<ReduceOp>(std::begin(kOps), std::end(kOps)));
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithmsAndRankCounts, AllreduceGrid,
                         ::testing::Combine(::testing::ValuesIn(kAlgorithms),
                                            ::testing::Range(1, 17)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_P" +
                                  std::to_string(std::get<1>(info.param));
                         });

// >= 4M elements: every dtype x op x algorithm at 3 ranks (not a power of two, so rhd folds).
class AllreduceLarge : public ::testing::TestWithParam<std::string> {};

TEST_P(AllreduceLarge, FourMillionElements) {
  check_grid(GetParam(), 3, {(4 << 20) + 3},
             std::vector<DType>(std::begin(kDTypes), std::end(kDTypes)),
             std::vector<ReduceOp>(std::begin(kOps), std::end(kOps)));
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, AllreduceLarge, ::testing::ValuesIn(kAlgorithms),
                         [](const auto& info) { return info.param; });

// Random float32: within p * eps * max|x| of a float64 reference, bitwise equal across ranks.
TEST(Allreduce, RandomFloatsAgreeAcrossRanksAndWithReference) {
  const int P = 5;
  const std::int64_t n = 10007;
  for (const std::string& algorithm : kAlgorithms) {
    std::vector<std::vector<float>> inputs(P, std::vector<float>(n)), outputs = inputs;
    std::mt19937 gen(7);
    std::uniform_real_distribution<float> dist(-1, 1);
    for (auto& input : inputs) {
      for (auto& x : input) x = dist(gen);
    }
    spawn_ranks(P, [&](Communicator& comm) {
      auto& mine = outputs[comm.rank()];
      mine = inputs[comm.rank()];
      comm.allreduce(Buffer{mine.data(), n, DType::kFloat32}, ReduceOp::kSum, algorithm).wait();
    });
    for (std::int64_t i = 0; i < n; ++i) {
      double reference = 0;
      for (int r = 0; r < P; ++r) reference += inputs[r][i];
      ASSERT_NEAR(outputs[0][i], reference, P * 1.2e-7 * P) << algorithm << " element " << i;
      for (int r = 1; r < P; ++r) {
        ASSERT_EQ(std::memcmp(&outputs[r][i], &outputs[0][i], sizeof(float)), 0)
            << algorithm << ": rank " << r << " differs from rank 0 at element " << i;
      }
    }
  }
}

// Bytes each rank sends, against the cost formulas in the algorithm headers.
TEST(Allreduce, ByteCountsMatchCostFormulas) {
  const std::int64_t n = 8 * 3 * 5 * 7;  // divisible by every P used
  const std::uint64_t S = n * sizeof(float);
  for (int P : {2, 4, 5, 8}) {
    for (std::string algorithm : {"ring", "star", "rhd"}) {
      std::vector<std::uint64_t> sent(P);
      spawn_ranks(P, [&](Communicator& comm) {
        std::vector<float> data(n, 1.0f);
        const std::uint64_t before = comm.bytes_sent();  // the constructor's cost model broadcast
        comm.allreduce(Buffer{data.data(), n, DType::kFloat32}, ReduceOp::kSum, algorithm).wait();
        sent[comm.rank()] = comm.bytes_sent() - before;
      });
      for (int r = 0; r < P; ++r) {
        std::uint64_t want = 0;
        if (algorithm == "ring") want = 2 * (P - 1) * S / P;
        if (algorithm == "star") want = r == 0 ? (P - 1) * S : S;
        if (algorithm == "rhd") {
          int q = 1;
          while (q * 2 <= P) q *= 2;
          int extra = P - q;
          bool sits_out = r < 2 * extra && r % 2 == 0;
          bool folds = r < 2 * extra && r % 2 == 1;
          want = sits_out ? S : 2 * (q - 1) * S / q + (folds ? S : 0);
        }
        EXPECT_EQ(sent[r], want) << algorithm << " P=" << P << " rank " << r;
      }
    }
  }
}

TEST(Collectives, BroadcastGatherAllgatherAlltoallReduceScatterBarrier) {
  for (int P : {1, 2, 3, 5, 8}) {
    spawn_ranks(P, [&](Communicator& comm) {
      const int r = comm.rank();
      // broadcast from the last rank
      std::vector<std::int64_t> b(11, r == P - 1 ? 42 : -1);
      comm.broadcast(Buffer{b.data(), 11, DType::kInt64}, P - 1).wait();
      for (auto v : b) EXPECT_EQ(v, 42);
      // gather to rank 0
      std::vector<std::int32_t> mine(3, r), all(3 * P, -1);
      comm.gather(Buffer{mine.data(), 3, DType::kInt32}, Buffer{all.data(), 3 * P, DType::kInt32},
                  0)
          .wait();
      if (r == 0) {
        for (int i = 0; i < 3 * P; ++i) EXPECT_EQ(all[i], i / 3);
      }
      // allgatherv with rank-dependent counts (rank q contributes q+1 values q)
      std::vector<std::int64_t> counts(P);
      std::iota(counts.begin(), counts.end(), 1);
      std::int64_t total = std::accumulate(counts.begin(), counts.end(), std::int64_t{0});
      std::vector<double> in(r + 1, r), out(total, -1);
      comm.allgatherv(Buffer{in.data(), r + 1, DType::kFloat64},
                      Buffer{out.data(), total, DType::kFloat64}, counts)
          .wait();
      std::int64_t at = 0;
      for (int q = 0; q < P; ++q) {
        for (int k = 0; k <= q; ++k) EXPECT_EQ(out[at++], q);
      }
      // alltoall: block j of rank i holds 100 i + j
      std::vector<std::int32_t> send(2 * P), recv(2 * P, -1);
      for (int j = 0; j < P; ++j) send[2 * j] = send[2 * j + 1] = 100 * r + j;
      comm.alltoall(Buffer{send.data(), 2 * P, DType::kInt32},
                    Buffer{recv.data(), 2 * P, DType::kInt32})
          .wait();
      for (int j = 0; j < P; ++j) EXPECT_EQ(recv[2 * j], 100 * j + r);
      // reduce-scatter of 2P + 1 elements: rank r gets chunk r of the sum
      const std::int64_t n = 2 * P + 1;
      std::vector<float> full(n);
      for (std::int64_t i = 0; i < n; ++i) full[i] = static_cast<float>(i + r);
      std::vector<float> part(split_count(n, P, r));
      comm.reduce_scatter(Buffer{full.data(), n, DType::kFloat32},
                          Buffer{part.data(), static_cast<std::int64_t>(part.size())},
                          ReduceOp::kSum)
          .wait();
      for (std::size_t k = 0; k < part.size(); ++k) {
        std::int64_t i = split_offset(n, P, r) + k;
        EXPECT_EQ(part[k], static_cast<float>(P * i + P * (P - 1) / 2));
      }
      comm.barrier().wait();
    });
  }
}

TEST(Collectives, FusedAllreduceOfManySmallBuffers) {
  spawn_ranks(3, [](Communicator& comm) {
    std::vector<std::vector<float>> tensors;
    for (int t = 0; t < 7; ++t)
      tensors.emplace_back(t * 3 + 1, static_cast<float>(comm.rank() + t));
    std::vector<Buffer> buffers;
    for (auto& t : tensors) buffers.push_back({t.data(), static_cast<std::int64_t>(t.size())});
    comm.allreduce_fused(buffers, ReduceOp::kAvg, "ring").wait();
    for (int t = 0; t < 7; ++t) {
      for (float v : tensors[t]) EXPECT_FLOAT_EQ(v, 1.0f + t);
    }
  });
}

TEST(CostModel, FormulasPickStarForTinyRhdForMediumRingForLargeAtOddRankCounts) {
  CostModel model;
  EXPECT_EQ(model.choose(8, 64), "star");        // 2 latencies against 6
  EXPECT_EQ(model.choose(8, 1 << 20), "rhd");    // ring's bytes, fewer latencies
  EXPECT_EQ(model.choose(7, 64 << 20), "ring");  // rhd pays a whole extra S to fold rank 7
  model.alpha_s = 1e-2;  // a very slow network per message moves the star crossover up
  EXPECT_EQ(model.choose(8, 1 << 20), "star");
}

TEST(CostModel, MeasuredWinnersReplaceFormulasForTheirRankCountAndRoundTrip) {
  CostModel model;
  model.measured_ranks = 4;
  model.measured_bytes = {4096, 65536, 1 << 20};
  model.measured_best = {"native", "star", "ring"};
  EXPECT_EQ(model.choose(4, 3000, true), "native");
  EXPECT_EQ(model.choose(4, 3000, false), CostModel{}.choose(4, 3000));  // no native: formulas
  EXPECT_EQ(model.choose(4, 100000, true), "star");
  EXPECT_EQ(model.choose(4, 64 << 20, true), "ring");
  CostModel copy = CostModel::deserialize(model.serialize());
  EXPECT_EQ(copy.serialize(), model.serialize());
  EXPECT_EQ(copy.measured_best, model.measured_best);
  EXPECT_EQ(copy.measured_bytes, model.measured_bytes);
  EXPECT_EQ(copy.choose(4, 100000, true), "star");
  std::vector<double> values = model.serialize();
  values.back() = 7;  // no algorithm has code 7
  EXPECT_THROW(CostModel::deserialize(values), CommError);
  values.pop_back();  // fewer values than the header announces
  EXPECT_THROW(CostModel::deserialize(values), CommError);
  EXPECT_THROW(CostModel::deserialize({}), CommError);
}

TEST(Errors, DebugModeNamesBothSidesOfAMismatch) {
  CommOptions options;
  options.debug_checks = true;
  std::vector<std::string> messages(2);
  spawn_ranks(
      2,
      [&](Communicator& comm) {
        std::vector<float> data(comm.rank() == 0 ? 10 : 12);
        Work work = comm.allreduce(Buffer{data.data(), static_cast<std::int64_t>(data.size())},
                                   ReduceOp::kSum, "ring");
        try {
          work.wait();
        } catch (const CommError& e) {
          messages[comm.rank()] = e.what();
        }
      },
      options);
  for (const auto& message : messages) {
    EXPECT_NE(message.find("rank 0 called allreduce(ring, 10 x float32)"), std::string::npos)
        << message;
    EXPECT_NE(message.find("rank 1 called allreduce(ring, 12 x float32)"), std::string::npos)
        << message;
  }
}

TEST(Errors, MismatchedSizesWithoutDebugModeAreCaughtOnReceipt) {
  CommOptions options;
  options.timeout = std::chrono::milliseconds(2000);
  int errors = 0;
  std::mutex mutex;
  spawn_ranks(
      2,
      [&](Communicator& comm) {
        std::vector<float> data(comm.rank() == 0 ? 10 : 12);
        try {
          comm.allreduce(Buffer{data.data(), static_cast<std::int64_t>(data.size())},
                         ReduceOp::kSum, "star")
              .wait();
        } catch (const CommError& e) {
          std::lock_guard<std::mutex> lock(mutex);
          ++errors;
        }
      },
      options);
  EXPECT_GE(errors, 1);
}

// Every algorithm and collective with one rank's count far larger than the others' (the review's
// reproduction, 1,000,000 against 100 elements) on thread ranks, shared memory included: every
// rank that receives ends in a CommError and nothing is written past a buffer (this program runs
// under AddressSanitizer in scripts/sanitize.sh). A broadcast's root receives nothing and may
// pass.
TEST(Errors, MismatchedCountsFailEveryReceivingRankUnderEveryAlgorithm) {
  using Op = std::function<void(Communicator&, std::int64_t)>;
  auto allreduce = [](const char* algorithm) -> Op {
    return [algorithm](Communicator& comm, std::int64_t n) {
      std::vector<float> data(n, 1.0f);
      comm.allreduce(Buffer{data.data(), n}, ReduceOp::kSum, algorithm).wait();
    };
  };
  struct Case {
    const char* name;
    Op op;
    int per_node;
    bool root_may_pass;
  };
  const std::vector<Case> cases = {
      {"ring", allreduce("ring"), 0, false},
      {"star", allreduce("star"), 0, false},
      {"rhd", allreduce("rhd"), 0, false},
      {"shm", allreduce("shm"), 0, false},
      {"hierarchical", allreduce("hierarchical"), 2, false},
      {"allgather",
       [](Communicator& comm, std::int64_t n) {
         std::vector<float> in(n, 1.0f), out(n * comm.size());
         comm.allgather(Buffer{in.data(), n}, Buffer{out.data(), n * comm.size()}).wait();
       },
       0, false},
      {"reduce_scatter",
       [](Communicator& comm, std::int64_t n) {
         std::vector<float> in(n * comm.size(), 1.0f), out(n);
         comm.reduce_scatter(Buffer{in.data(), n * comm.size()}, Buffer{out.data(), n},
                             ReduceOp::kSum)
             .wait();
       },
       0, false},
      {"broadcast",
       [](Communicator& comm, std::int64_t n) {
         std::vector<float> data(n, 1.0f);
         comm.broadcast(Buffer{data.data(), n}, 0).wait();
       },
       0, true},
      {"alltoall",
       [](Communicator& comm, std::int64_t n) {
         std::vector<float> in(n * comm.size(), 1.0f), out(n * comm.size());
         comm.alltoall(Buffer{in.data(), n * comm.size()}, Buffer{out.data(), n * comm.size()})
             .wait();
       },
       0, false},
  };
  CommOptions options;
  options.timeout = std::chrono::milliseconds(300);
  for (const Case& c : cases) {
    for (int P : {2, 4}) {
      std::vector<std::string> errors(P);
      spawn_ranks(
          P,
          [&](Communicator& comm) {
            try {
              c.op(comm, comm.rank() == 0 ? 1000000 : 100);
            } catch (const CommError& e) {
              errors[comm.rank()] = e.what();
            }
          },
          options, ThreadTransport::create_world(P, c.per_node));
      for (int r = c.root_may_pass ? 1 : 0; r < P; ++r) {
        EXPECT_FALSE(errors[r].empty()) << c.name << " P=" << P << ": rank " << r << " passed";
      }
    }
  }
}

TEST(Errors, SilentPeerGivesTimeoutNamingTheOp) {
  CommOptions options;
  options.timeout = std::chrono::milliseconds(200);
  std::string message;
  spawn_ranks(
      2,
      [&](Communicator& comm) {
        if (comm.rank() == 1) return;  // never joins
        std::vector<float> data(100);
        try {
          comm.allreduce(Buffer{data.data(), 100}, ReduceOp::kSum, "ring").wait();
        } catch (const TimeoutError& e) {
          message = e.what();
        }
      },
      options);
  // Sequence number 0 is the constructor's cost model broadcast.
  EXPECT_NE(message.find("rank 0: allreduce(ring, 100 x float32) (sequence number 1) timed out"),
            std::string::npos)
      << message;
}

TEST(Errors, InjectedFaultReachesWaitAndBreaksTheCommunicator) {
  CommOptions options;
  options.timeout = std::chrono::milliseconds(500);
  auto transports = ThreadTransport::create_world(2);
  transports[0] = std::make_shared<FaultyTransport>(transports[0], 3);
  std::string first, second;
  spawn_ranks(
      2,
      [&](Communicator& comm) {
        std::vector<float> data(64);
        for (int op = 0; op < 3; ++op) {
          try {
            comm.allreduce(Buffer{data.data(), 64}, ReduceOp::kSum, "ring").wait();
          } catch (const CommError& e) {
            if (comm.rank() == 0 && first.empty()) {
              first = e.what();
            } else if (comm.rank() == 0 && second.empty()) {
              second = e.what();
            }
          }
        }
      },
      options, transports);
  EXPECT_NE(first.find("injected transport fault at operation 3"), std::string::npos) << first;
  EXPECT_NE(second.find("failed earlier"), std::string::npos) << second;
}

TEST(Errors, UnknownAlgorithmIsAConfigErrorListingTheValidOnes) {
  spawn_ranks(1, [](Communicator& comm) {
    float x = 0;
    try {
      (void)comm.allreduce(Buffer{&x, 1}, ReduceOp::kSum, "butterfly");
      ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("ring, star, rhd, native, shm, hierarchical, auto"),
                std::string::npos);
    }
  });
}

TEST(Errors, NativeNeedsAnMpiTransport) {
  spawn_ranks(2, [](Communicator& comm) {
    float x = 0;
    EXPECT_THROW(comm.allreduce(Buffer{&x, 1}, ReduceOp::kSum, "native").wait(), CommError);
  });
}

TEST(Work, IsCompletedNeverBlocksAndWaitTimesOut) {
  Work work = Work::pending("test op");
  EXPECT_FALSE(work.is_completed());
  EXPECT_THROW(work.wait(std::chrono::milliseconds(1)), TimeoutError);
  work.mark_completed(std::make_exception_ptr(CommError("boom")));
  EXPECT_TRUE(work.is_completed());
  EXPECT_THROW(work.wait(), CommError);
  EXPECT_TRUE(Work().is_completed());
}

TEST(Transport, SplitFormsSubgroupsByColorOrderedByKey) {
  auto transports = ThreadTransport::create_world(5);
  std::vector<std::shared_ptr<Transport>> children(5);
  std::vector<std::thread> threads;
  for (int r = 0; r < 5; ++r) {
    threads.emplace_back([&, r] { children[r] = transports[r]->split(r % 2, -r); });
  }
  for (auto& t : threads) t.join();
  // color 0: ranks 0, 2, 4 ordered by key -r: 4, 2, 0
  EXPECT_EQ(children[4]->rank(), 0);
  EXPECT_EQ(children[0]->rank(), 2);
  EXPECT_EQ(children[1]->size(), 2);
  spawn_ranks(3,
              [](Communicator& comm) {
                std::int64_t x = comm.rank() + 1;
                comm.allreduce(Buffer{&x, 1, DType::kInt64}, ReduceOp::kSum, "ring").wait();
                EXPECT_EQ(x, 6);
              },
              {}, {children[4], children[2], children[0]});
}

// The avg tolerance is derived from rounding (verify.cpp): a correctly rounded average and one
// off by 1 ulp pass, one off by 3 ulps of its dtype is counted wrong, for every floating dtype.
TEST(Verify, AvgToleranceAcceptsOneUlpAndRejectsThreeUlps) {
  const int P = 5;  // sum / 5 is inexact in binary: the division really rounds
  const std::int64_t n = 9;
  for (DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16}) {
    const std::size_t elem = dtype_size(dtype);
    std::vector<char> memory(n * elem);
    Buffer buffer{memory.data(), n, dtype};
    // The pattern's sums are small integers, exact in float64; the average is then divided in
    // the dtype as the collectives do (float32 for the 16-bit types, then rounded to them).
    std::vector<double> sums(n, 0.0);
    for (int r = 0; r < P; ++r) {
      for (std::int64_t i = 0; i < n; ++i) sums[i] += pattern(r, i);
    }
    auto element_bits = [&](std::int64_t i) { return memory.data() + i * elem; };
    auto store = [&](std::int64_t i, double sum) {
      switch (dtype) {
        case DType::kFloat32: {
          float v = static_cast<float>(sum) / static_cast<float>(P);
          std::memcpy(element_bits(i), &v, elem);
          break;
        }
        case DType::kFloat64: {
          double v = sum / P;
          std::memcpy(element_bits(i), &v, elem);
          break;
        }
        case DType::kFloat16: {
          c10::Half v(static_cast<float>(sum) / static_cast<float>(P));
          std::memcpy(element_bits(i), &v, elem);
          break;
        }
        default: {
          c10::BFloat16 v(static_cast<float>(sum) / static_cast<float>(P));
          std::memcpy(element_bits(i), &v, elem);
          break;
        }
      }
    };
    // Moves element i by `ulps` units in the last place away from zero: its integer bit pattern
    // (sign-magnitude) grows by `ulps`.
    auto nudge = [&](std::int64_t i, int ulps) {
      if (elem == 8) {
        std::uint64_t bits;
        std::memcpy(&bits, element_bits(i), 8);
        bits += ulps;
        std::memcpy(element_bits(i), &bits, 8);
      } else if (elem == 4) {
        std::uint32_t bits;
        std::memcpy(&bits, element_bits(i), 4);
        bits += ulps;
        std::memcpy(element_bits(i), &bits, 4);
      } else {
        std::uint16_t bits;
        std::memcpy(&bits, element_bits(i), 2);
        bits = static_cast<std::uint16_t>(bits + ulps);
        std::memcpy(element_bits(i), &bits, 2);
      }
    };
    std::int64_t nonzero = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      store(i, sums[i]);
      nonzero += sums[i] != 0;
    }
    ASSERT_EQ(count_wrong(buffer, ReduceOp::kAvg, P), 0) << dtype_name(dtype);
    ASSERT_GT(nonzero, 0);
    for (std::int64_t i = 0; i < n; ++i) {
      if (sums[i] == 0) continue;
      store(i, sums[i]);
      nudge(i, 1);
      EXPECT_EQ(count_wrong(buffer, ReduceOp::kAvg, P), 0)
          << dtype_name(dtype) << " element " << i << " 1 ulp off";
      store(i, sums[i]);
      nudge(i, 3);
      EXPECT_EQ(count_wrong(buffer, ReduceOp::kAvg, P), 1)
          << dtype_name(dtype) << " element " << i << " 3 ulps off";
      store(i, sums[i]);
    }
  }
}

TEST(Verify, Uint8HasNoReductions) {
  std::uint8_t bytes[4] = {1, 2, 3, 4};
  EXPECT_THROW(reduce_into(Buffer{bytes, 4, DType::kUInt8}, bytes, ReduceOp::kMax), CheckError);
  EXPECT_EQ(parse_dtype("uint8"), DType::kUInt8);
  EXPECT_EQ(dtype_size(DType::kUInt8), 1u);
  spawn_ranks(2, [&](Communicator& comm) {
    std::uint8_t mine[4] = {1, 2, 3, 4};
    EXPECT_THROW((void)comm.allreduce(Buffer{mine, 4, DType::kUInt8}, ReduceOp::kSum), CheckError);
  });
}

}  // namespace
}  // namespace braid
