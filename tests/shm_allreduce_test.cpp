// Tier 1: threads as ranks on emulated nodes. The shared-memory allreduce ("shm") and
// "hierarchical" against closed forms for 1..8 ranks on 1, 2 and 3 nodes, every size class,
// dtype and op; registered (window) and copied buffers; bitwise equality with star and ring
// where the reduction order is the same; byte counters that keep network and shared-memory
// traffic apart; a stalled peer ends in a TimeoutError; the layout and the error paths.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>

#include "collectives/allreduce_shm.h"
#include "collectives/shared_memory.h"
#include "collectives/verify.h"
#include "common/error.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::spawn_ranks;

const DType kDTypes[] = {DType::kFloat32,  DType::kFloat64, DType::kFloat16,
                         DType::kBFloat16, DType::kInt32,   DType::kInt64};
const ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin};

// Ranks of nodes of `per_node` (0: one node) as threads.
std::vector<std::shared_ptr<Transport>> nodes_of(int ranks, int per_node) {
  return ThreadTransport::create_world(ranks, per_node);
}

// This rank's part of a new shared region (collective: every rank calls it in order).
char* allocate_shared(Communicator& comm, std::size_t bytes) {
  char* memory = nullptr;
  comm.submit({"allocate", "shm", 0, DType::kUInt8},
              [&](OpContext& ctx) { memory = ctx.transport().shared_memory()->allocate(bytes); })
      .wait();
  return memory;
}

void check_grid(const std::string& algorithm, int ranks, int per_node,
                const std::vector<DType>& dtypes, bool registered) {
  const std::int64_t not_divisible = 97 * ranks + (ranks > 1 ? 1 : 0);
  const std::vector<std::int64_t> counts = {0, 1, std::max(ranks - 1, 1), not_divisible};
  spawn_ranks(
      ranks,
      [&](Communicator& comm) {
        const std::size_t largest = not_divisible * sizeof(double) + 8;
        std::vector<char> own(registered ? 0 : largest);
        char* memory = registered ? allocate_shared(comm, largest) : own.data();
        for (std::int64_t count : counts) {
          for (DType dtype : dtypes) {
            Buffer buffer{memory, count, dtype};
            for (ReduceOp op : kOps) {
              fill_pattern(buffer, comm.rank());
              comm.allreduce(buffer, op, algorithm).wait();
              EXPECT_EQ(count_wrong(buffer, op, ranks), 0)
                  << algorithm << " P=" << ranks << " per node " << per_node << " rank "
                  << comm.rank() << " count " << count << " " << dtype_name(dtype) << " "
                  << reduce_op_name(op) << (registered ? " registered" : "");
            }
          }
        }
      },
      {}, nodes_of(ranks, per_node));
}

const std::vector<DType> kFloatAndInt(std::begin(kDTypes), std::end(kDTypes));

TEST(ShmAllreduce, OneNodeEveryRankCountAndSize) {
  for (int P = 1; P <= 8; ++P) check_grid("shm", P, 0, kFloatAndInt, false);
}

TEST(ShmAllreduce, EveryDtypeCopiedAndRegistered) {
  const std::vector<DType> all(std::begin(kDTypes), std::end(kDTypes));
  check_grid("shm", 3, 0, all, false);
  check_grid("shm", 3, 0, all, true);
}

TEST(HierarchicalAllreduce, OneTwoAndThreeNodesEveryRankCount) {
  for (int P = 1; P <= 8; ++P) {
    for (int nodes : {1, 2, 3}) {
      if (P % nodes) continue;  // hierarchical needs equal nodes (tested below)
      check_grid("hierarchical", P, P / nodes, kFloatAndInt, P == 6);
    }
  }
}

TEST(HierarchicalAllreduce, EveryDtypeOnTwoNodesOfTwo) {
  const std::vector<DType> all(std::begin(kDTypes), std::end(kDTypes));
  check_grid("hierarchical", 4, 2, all, false);
  check_grid("hierarchical", 4, 2, all, true);
  check_grid("auto", 4, 2, all, false);
}

TEST(HierarchicalAllreduce, LargeBuffer) {
  const std::int64_t n = (1 << 20) + 3;
  spawn_ranks(
      4,
      [&](Communicator& comm) {
        for (bool registered : {false, true}) {
          std::vector<float> own(registered ? 0 : n);
          void* data = registered ? allocate_shared(comm, n * sizeof(float))
                                  : static_cast<void*>(own.data());
          Buffer buffer{data, n};
          fill_pattern(buffer, comm.rank());
          comm.allreduce(buffer, ReduceOp::kSum, "hierarchical").wait();
          EXPECT_EQ(count_wrong(buffer, ReduceOp::kSum, 4), 0) << registered;
        }
      },
      {}, nodes_of(4, 2));
}

// Random float32 through `algorithm` on `transports`; every rank's result.
std::vector<std::vector<float>> reduce_random(const std::string& algorithm, int P, int per_node,
                                              std::int64_t n) {
  std::vector<std::vector<float>> out(P, std::vector<float>(n));
  spawn_ranks(
      P,
      [&](Communicator& comm) {
        std::mt19937 gen(11 + comm.rank());
        std::uniform_real_distribution<float> dist(-1, 1);
        for (auto& x : out[comm.rank()]) x = dist(gen);
        comm.allreduce(Buffer{out[comm.rank()].data(), n}, ReduceOp::kSum, algorithm).wait();
      },
      {}, nodes_of(P, per_node));
  return out;
}

// 10007 floats: every chunk is one step of progress; 700001: chunks of 3 to 6 steps (of 256 KiB)
// and a short last one, so peers copy some steps while others are still being reduced.
TEST(ShmAllreduce, BitwiseEqualToStarAndAcrossRanks) {
  for (std::int64_t n : {10007, 700001}) {
    for (int P : {2, 3, 5}) {
      auto shm = reduce_random("shm", P, 0, n);
      auto star = reduce_random("star", P, 0, n);
      for (int r = 0; r < P; ++r) {
        EXPECT_EQ(std::memcmp(shm[r].data(), star[0].data(), n * sizeof(float)), 0)
            << "n=" << n << " P=" << P << " rank " << r;
      }
    }
  }
}

// Several steps per chunk with an op whose operand order matters (max picks +0 or -0 by order),
// registered and copied, every rank's result equal to the closed form.
TEST(ShmAllreduce, ManyStepsEveryOpRegisteredAndCopied) {
  const std::int64_t n = 3 * 65536 * 3 + 11;
  for (int P : {2, 3}) {
    spawn_ranks(P, [&](Communicator& comm) {
      for (bool registered : {false, true}) {
        std::vector<float> own(registered ? 0 : n);
        void* data =
            registered ? allocate_shared(comm, n * sizeof(float)) : static_cast<void*>(own.data());
        for (ReduceOp op : kOps) {
          Buffer buffer{data, n};
          fill_pattern(buffer, comm.rank());
          comm.allreduce(buffer, op, "shm").wait();
          EXPECT_EQ(count_wrong(buffer, op, P), 0)
              << "P=" << P << " " << reduce_op_name(op) << (registered ? " registered" : "");
        }
      }
    });
  }
}

// Progress shown with advance() is seen by peers within the phase and reads 0 after the next
// barrier, without anyone resetting it.
TEST(SharedMemory, ProgressCountsWithinAPhase) {
  std::vector<std::uint64_t> seen(4, 99);
  spawn_ranks(2, [&](Communicator& comm) {
    comm.submit({"progress", "shm", 0, DType::kUInt8},
                [&](OpContext& ctx) {
                  SharedMemory& shm = *ctx.transport().shared_memory();
                  const int me = shm.layout().local_rank;
                  int late = -1;
                  // Rank 0 shows `units`; rank 1 waits until it sees them and records what it saw.
                  auto show_and_see = [&](std::uint64_t units, int slot) {
                    if (me == 0) shm.advance(units);
                    if (me == 0) return;
                    ASSERT_TRUE(poll_until([&] { return shm.progress(0) >= units; }, ctx.deadline(),
                                           ctx.aborted()));
                    seen[slot] = shm.progress(0);
                  };
                  ASSERT_TRUE(shm.prepare(ctx.deadline(), ctx.aborted()));
                  ASSERT_TRUE(shm.barrier(ctx.deadline(), ctx.aborted(), &late));
                  show_and_see(3, 0);
                  ASSERT_TRUE(shm.barrier(ctx.deadline(), ctx.aborted(), &late));
                  seen[1 + me] =
                      shm.progress(0);  // a new phase: rank 0's 3 reads as 0 on both ranks
                  // Both have read it before rank 0 shows more (once raced under TSan: rank 1
                  // read the next advance).
                  ASSERT_TRUE(shm.barrier(ctx.deadline(), ctx.aborted(), &late));
                  show_and_see(1, 3);
                  ASSERT_TRUE(shm.barrier(ctx.deadline(), ctx.aborted(), &late));
                })
        .wait();
  });
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{3, 0, 0, 1}));
}

// Teardown (agree_to_release): one decision for the node. A rank arriving late, within the
// deadline, still frees with the others; a rank arriving after a peer gave up leaves the memory
// too, instead of entering a free (MPI_Win_free synchronises the node) that no peer joins.
TEST(SharedMemory, TeardownDecisionIsTheSameOnEveryRank) {
  for (const bool late_past_deadline : {false, true}) {
    std::vector<int> released(2, -1);
    std::atomic<bool> first_decided{false};
    spawn_ranks(2, [&](Communicator& comm) {
      comm.submit({"teardown", "shm", 0, DType::kUInt8},
                  [&](OpContext& ctx) {
                    SharedMemory& shm = *ctx.transport().shared_memory();
                    ASSERT_TRUE(shm.prepare(ctx.deadline(), ctx.aborted()));
                    int late = -1;
                    ASSERT_TRUE(shm.barrier(ctx.deadline(), ctx.aborted(), &late));
                    const int me = shm.layout().local_rank;
                    if (me == 1) {
                      // Past the deadline at once when rank 0 is to come too late.
                      const auto wait =
                          late_past_deadline ? std::chrono::seconds(0) : std::chrono::seconds(60);
                      released[1] = shm.agree_to_release(Clock::now() + wait);
                      first_decided = true;
                      return;
                    }
                    // Rank 0 comes once rank 1 decided (too late) or while it waits (in time).
                    if (late_past_deadline) {
                      ASSERT_TRUE(poll_until([&] { return first_decided.load(); }, ctx.deadline(),
                                             nullptr));
                    }
                    released[0] = shm.agree_to_release(Clock::now() + std::chrono::seconds(60));
                  })
          .wait();
    });
    const int expected = late_past_deadline ? 0 : 1;
    EXPECT_EQ(released, (std::vector<int>{expected, expected})) << late_past_deadline;
  }
}

// The words a rank publishes carry its count and dtype: shm compares them before any copy.
TEST(ShmAllreduce, DifferentCountsOrDtypesNameBothOnEveryRank) {
  CommOptions options;
  options.timeout = std::chrono::seconds(30);
  for (const bool dtype_differs : {false, true}) {
    std::vector<std::string> errors(3);
    spawn_ranks(
        3,
        [&](Communicator& comm) {
          const bool odd = comm.rank() == 2;
          std::vector<double> data(1000, 1.0);
          const std::int64_t n = odd && !dtype_differs ? 999 : 1000;
          const DType dtype = odd && dtype_differs ? DType::kInt64 : DType::kFloat64;
          try {
            comm.allreduce(Buffer{data.data(), n, dtype}, ReduceOp::kMax, "shm").wait();
          } catch (const CommError& e) {
            errors[comm.rank()] = e.what();
          }
        },
        options);
    for (int r = 0; r < 3; ++r) {
      const std::string& e = errors[r];
      EXPECT_NE(e.find(dtype_differs ? "1000 x int64" : "999 x float64"), std::string::npos)
          << r << ": " << e;
      if (r != 2) EXPECT_NE(e.find("passed 1000 x float64"), std::string::npos) << r << ": " << e;
    }
  }
}

// With one rank per node the inter-node ring is the whole algorithm: ring's order exactly.
TEST(HierarchicalAllreduce, OneRankPerNodeIsBitwiseRing) {
  const std::int64_t n = 10007;
  auto hierarchical = reduce_random("hierarchical", 3, 1, n);
  auto ring = reduce_random("ring", 3, 0, n);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(std::memcmp(hierarchical[r].data(), ring[r].data(), n * sizeof(float)), 0) << r;
  }
}

// Against a float64 reference within P * eps * max|x| (inputs in [-1, 1]); a deliberately
// wrong result (one element off by 1e-5) must fail the same check.
TEST(HierarchicalAllreduce, RandomFloatsWithinRoundingOfFloat64) {
  const int P = 6;
  const std::int64_t n = 4099;
  auto out = reduce_random("hierarchical", P, 3, n);
  std::vector<double> reference(n, 0.0);
  for (int r = 0; r < P; ++r) {
    std::mt19937 gen(11 + r);
    std::uniform_real_distribution<float> dist(-1, 1);
    for (auto& x : reference) x += static_cast<double>(dist(gen));
  }
  const double tolerance = P * P * 0x1p-24;
  auto within = [&](const std::vector<float>& got) {
    for (std::int64_t i = 0; i < n; ++i) {
      if (std::abs(static_cast<double>(got[i]) - reference[i]) > tolerance) return false;
    }
    return true;
  };
  for (int r = 0; r < P; ++r) {
    EXPECT_TRUE(within(out[r])) << r;
    EXPECT_EQ(std::memcmp(out[r].data(), out[0].data(), n * sizeof(float)), 0) << r;
  }
  auto wrong = out[0];
  wrong[17] += 1e-5f;
  EXPECT_FALSE(within(wrong));  // negative control
}

// Network bytes per rank: none for shm; 2 (N-1)/N * S/L for hierarchical (and for auto, which
// picks it), against 2 (P-1)/P * S for a flat ring. Shared-memory reads: 2 (L-1)/L * S.
TEST(HierarchicalAllreduce, ByteCountersSeparateNetworkAndSharedMemory) {
  const std::int64_t n = 8 * 3 * 5 * 7;
  const std::uint64_t S = n * sizeof(float);
  struct Case {
    std::string algorithm;
    int P, L;
  };
  for (const Case& c : {Case{"shm", 4, 4}, Case{"hierarchical", 4, 2}, Case{"auto", 4, 2},
                        Case{"hierarchical", 6, 3}, Case{"ring", 4, 2}}) {
    std::vector<std::uint64_t> sent(c.P), read(c.P);
    spawn_ranks(
        c.P,
        [&](Communicator& comm) {
          std::vector<float> data(n, 1.0f);
          // Warm up: the thread transport's shared-memory set-up is a few messages (as its
          // split() is), counted once.
          comm.allreduce(Buffer{data.data(), n}, ReduceOp::kSum, c.algorithm).wait();
          std::fill(data.begin(), data.end(), 1.0f);
          const std::uint64_t sent0 = comm.bytes_sent(), read0 = comm.shared_memory_bytes();
          comm.allreduce(Buffer{data.data(), n}, ReduceOp::kSum, c.algorithm).wait();
          sent[comm.rank()] = comm.bytes_sent() - sent0;
          read[comm.rank()] = comm.shared_memory_bytes() - read0;
          EXPECT_EQ(data[n - 1], static_cast<float>(c.P));
        },
        {}, nodes_of(c.P, c.L));
    const int N = c.P / c.L;
    for (int r = 0; r < c.P; ++r) {
      if (c.algorithm == "ring") {
        EXPECT_EQ(sent[r], 2 * (c.P - 1) * S / c.P) << r;
        EXPECT_EQ(read[r], 0u) << r;
        continue;
      }
      EXPECT_EQ(sent[r], 2 * (N - 1) * S / (N * c.L))
          << c.algorithm << " P=" << c.P << " rank " << r;
      EXPECT_EQ(read[r], 2 * (c.L - 1) * S / c.L) << c.algorithm << " P=" << c.P << " rank " << r;
    }
  }
}

TEST(HierarchicalAllreduce, RegisteredOnSomeRanksOnlyStillCorrect) {
  const std::int64_t n = 1001;
  spawn_ranks(3, [&](Communicator& comm) {
    char* shared = allocate_shared(comm, n * sizeof(float));
    std::vector<float> own(n);
    Buffer buffer{comm.rank() == 1 ? static_cast<void*>(own.data()) : shared, n};
    fill_pattern(buffer, comm.rank());
    comm.allreduce(buffer, ReduceOp::kMax, "shm").wait();
    EXPECT_EQ(count_wrong(buffer, ReduceOp::kMax, 3), 0);
  });
}

// Rank 3 takes part in the first allreduce (shared memory is set up), then stalls.
TEST(ShmAllreduce, StalledPeerEndsInTimeoutNamingTheBarrier) {
  CommOptions options;
  options.timeout = std::chrono::milliseconds(200);
  std::vector<std::string> messages(4);
  spawn_ranks(
      4,
      [&](Communicator& comm) {
        std::vector<float> data(1000, 1.0f);
        comm.allreduce(Buffer{data.data(), 1000}, ReduceOp::kSum, "hierarchical").wait();
        if (comm.rank() == 3) return;  // stalls: never joins again
        try {
          comm.allreduce(Buffer{data.data(), 1000}, ReduceOp::kSum, "hierarchical").wait();
        } catch (const TimeoutError& e) {
          messages[comm.rank()] = e.what();
        }
      },
      options, nodes_of(4, 2));
  // Rank 2 shares a node with rank 3 and waits at a barrier; ranks 0 and 1 wait for rank 2 or 3
  // (the barrier or the inter-node exchange); none hangs.
  EXPECT_NE(messages[2].find("shared-memory barrier"), std::string::npos) << messages[2];
  EXPECT_NE(messages[2].find("rank 3, had not arrived"), std::string::npos) << messages[2];
  for (int r = 0; r < 3; ++r) EXPECT_NE(messages[r].find("timed out"), std::string::npos) << r;
}

// shm with a step of our own between the reduce-scatter and the allgather (as hierarchical's).
class ShmWithStep : public AllreduceShm {
 public:
  using AllreduceShm::run_on_node;
};

// Rank 1 reduces its chunk and then stalls instead of showing it, until rank 0 has given up:
// rank 0, waiting for rank 1's progress in the middle of the round, ends in a TimeoutError
// naming it, never a hang on the flag; rank 1 then times out at the closing barrier.
TEST(ShmAllreduce, PeerStalledMidRoundEndsInTimeoutNamingIt) {
  CommOptions options;
  // Long enough for the steps before the stall (copying 2 MiB in, a barrier) under
  // ThreadSanitizer on a loaded machine, where 200 ms ran out before them 8 times in 30.
  options.timeout = std::chrono::seconds(2);
  std::vector<std::string> messages(2);
  std::atomic<bool> rank0_gave_up{false};
  const std::int64_t n = 1 << 19;  // chunks of 1 MiB: 4 steps of progress each
  spawn_ranks(
      2,
      [&](Communicator& comm) {
        std::vector<float> data(n, 1.0f);
        ShmWithStep shm;
        auto stall = [&](Buffer) {
          if (comm.rank() != 1) return;
          poll_until([&] { return rank0_gave_up.load(); }, Clock::now() + std::chrono::seconds(30),
                     nullptr);
        };
        try {
          comm.submit({"allreduce", "shm", n, DType::kFloat32},
                      [&](OpContext& ctx) {
                        shm.run_on_node(ctx, *ctx.transport().shared_memory(),
                                        Buffer{data.data(), n}, ReduceOp::kSum, stall);
                      })
              .wait();
        } catch (const TimeoutError& e) {
          messages[comm.rank()] = e.what();
        }
        if (comm.rank() == 0) rank0_gave_up = true;
      },
      options, nodes_of(2, 0));
  EXPECT_NE(messages[0].find("read the reduced chunk of local rank 1 (rank 1; it showed 0 of 4"),
            std::string::npos)
      << messages[0];
  EXPECT_NE(messages[1].find("timed out"), std::string::npos) << messages[1];
}

// A peer that never arrives at the first shared-memory operation: the set-up times out too.
TEST(ShmAllreduce, PeerMissingAtSetUpEndsInTimeout) {
  CommOptions options;
  options.timeout = std::chrono::milliseconds(200);
  std::string message;
  spawn_ranks(
      2,
      [&](Communicator& comm) {
        if (comm.rank() == 1) return;
        std::vector<float> data(10, 1.0f);
        try {
          comm.allreduce(Buffer{data.data(), 10}, ReduceOp::kSum, "shm").wait();
        } catch (const TimeoutError& e) {
          message = e.what();
        }
      },
      options);
  EXPECT_NE(message.find("rank 0: allreduce(shm, 10 x float32) (sequence number 1) timed out"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("set up shared memory"), std::string::npos) << message;
}

TEST(HierarchicalAllreduce, WrongLayoutsAreNamedErrors) {
  auto error_of = [](const std::string& algorithm, int P, int per_node) {
    std::string message;
    spawn_ranks(
        P,
        [&](Communicator& comm) {
          std::vector<float> data(10, 1.0f);
          try {
            comm.allreduce(Buffer{data.data(), 10}, ReduceOp::kSum, algorithm).wait();
          } catch (const CommError& e) {
            if (comm.rank() == 0) message = e.what();
          }
        },
        {}, nodes_of(P, per_node));
    return message;
  };
  EXPECT_NE(error_of("shm", 4, 2).find("needs all ranks on one node"), std::string::npos);
  EXPECT_NE(error_of("hierarchical", 5, 2).find("same number of ranks on every node"),
            std::string::npos);
  EXPECT_EQ(error_of("auto", 5, 2), "");  // auto falls back to a flat algorithm
}

TEST(NodeLayout, FromKeys) {
  // Keys of 7 ranks: nodes {0, 3, 4}, {1, 5}, {2, 6}.
  const std::vector<int> keys = {9, 4, 7, 9, 9, 4, 7};
  NodeLayout l = NodeLayout::from_keys(keys, 5);
  EXPECT_EQ(l.nodes, 3);
  EXPECT_EQ(l.node, 1);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.local_size, 2);
  EXPECT_FALSE(l.uniform);
  EXPECT_EQ(l.node_ranks, (std::vector<int>{1, 5}));
  EXPECT_EQ(l.index_ranks, (std::vector<int>{3, 5, 6}));
  EXPECT_TRUE(NodeLayout::from_keys({0, 0, 1, 1}, 2).uniform);
}

}  // namespace
}  // namespace braid
