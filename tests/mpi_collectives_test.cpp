// Tier 2: real processes under mpirun. Every braid algorithm against MPI's own allreduce on the
// same inputs, for every dtype and op and for awkward sizes; the other collectives against
// closed forms. Each rank runs the same GoogleTest cases; mpirun fails if any rank fails.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "collectives/communicator.h"
#include "collectives/shared_memory.h"
#include "collectives/transport_mpi.h"
#include "collectives/verify.h"
#include "tests/mpi_test_main.h"

namespace braid {
namespace {

Communicator& comm() {
  static Communicator instance(std::make_shared<MpiTransport>(MPI_COMM_WORLD), [] {
    CommOptions options;
    options.timeout = std::chrono::seconds(60);
    options.debug_checks = true;
    options.allreduce.segment_bytes = 64 * 1024;
    return options;
  }());
  return instance;
}

TEST(MpiAllreduce, EveryAlgorithmMatchesNative) {
  const int P = comm().size();
  const DType dtypes[] = {DType::kFloat32,  DType::kFloat64, DType::kFloat16,
                          DType::kBFloat16, DType::kInt32,   DType::kInt64};
  const ReduceOp ops[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin};
  for (std::int64_t count : {std::int64_t{0}, std::int64_t{1}, std::int64_t{P - 1},
                             std::int64_t{1000 * P + 1}, std::int64_t{(1 << 20) + 7}}) {
    for (DType dtype : dtypes) {
      const std::size_t bytes = count * dtype_size(dtype);
      std::vector<char> reference(bytes + 1), mine(bytes + 1);
      for (ReduceOp op : ops) {
        Buffer ref{reference.data(), count, dtype};
        fill_pattern(ref, comm().rank());
        comm().allreduce(ref, op, "native").wait();
        ASSERT_EQ(count_wrong(ref, op, P), 0) << "native disagrees with the closed form";
        for (const char* algorithm : {"ring", "star", "rhd", "shm", "auto"}) {
          Buffer buffer{mine.data(), count, dtype};
          fill_pattern(buffer, comm().rank());
          comm().allreduce(buffer, op, algorithm).wait();
          EXPECT_EQ(std::memcmp(mine.data(), reference.data(), bytes), 0)
              << algorithm << " vs native: count " << count << " " << dtype_name(dtype) << " "
              << reduce_op_name(op) << " on rank " << comm().rank();
        }
      }
    }
  }
}

// Real processes on emulated nodes of 1 and 2 ranks (MPI-3 windows): hierarchical and auto
// against the closed form, with copied and registered (window) buffers; hierarchical's network
// bytes are its share only, 2 (N-1)/N * S/L per rank (checked where N <= 2).
TEST(MpiShm, HierarchicalOnEmulatedNodes) {
  const int P = comm().size();
  for (int per_node : {1, 2}) {
    CommOptions options;
    options.timeout = std::chrono::seconds(60);
    Communicator local(std::make_shared<MpiTransport>(MPI_COMM_WORLD, per_node), options);
    const SharedMemory* shm = local.transport().shared_memory();
    ASSERT_NE(shm, nullptr);
    EXPECT_EQ(shm->layout().local_rank, local.rank() % per_node);
    if (P % per_node) continue;  // hierarchical needs equal nodes
    const std::int64_t largest = (1 << 18) + 7;
    char* shared = nullptr;
    local
        .submit({"register", "shm", 0, DType::kUInt8},
                [&](OpContext& ctx) {
                  shared = ctx.transport().shared_memory()->allocate(largest * sizeof(double));
                })
        .wait();
    std::vector<char> own(largest * sizeof(double));
    for (std::int64_t count : {std::int64_t{0}, std::int64_t{1}, std::int64_t{P - 1},
                               std::int64_t{1000 * P + 1}, largest}) {
      for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kInt64}) {
        for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
          for (char* memory : {own.data(), shared}) {
            for (const char* algorithm : {"hierarchical", "auto"}) {
              Buffer buffer{memory, count, dtype};
              fill_pattern(buffer, local.rank());
              local.allreduce(buffer, op, algorithm).wait();
              EXPECT_EQ(count_wrong(buffer, op, P), 0)
                  << algorithm << " per node " << per_node << " count " << count << " "
                  << dtype_name(dtype) << " " << reduce_op_name(op)
                  << (memory == shared ? " registered" : "") << " on rank " << local.rank();
            }
          }
        }
      }
    }
    // With N <= 2 nodes ring and rhd send the same bytes; at np <= 5 that is per_node == 2.
    if (per_node != 2) continue;
    const std::int64_t n = 840 * per_node;
    std::vector<float> data(n, 1.0f);
    const std::uint64_t before = local.bytes_sent();
    local.allreduce(Buffer{data.data(), n}, ReduceOp::kSum, "hierarchical").wait();
    const std::uint64_t N = P / per_node, S = n * sizeof(float);
    EXPECT_EQ(local.bytes_sent() - before, 2 * (N - 1) * S / (N * per_node));
  }
}

TEST(MpiCollectives, AllgatherBroadcastAlltoallBarrier) {
  const int P = comm().size(), r = comm().rank();
  std::vector<std::int64_t> counts(P);
  std::iota(counts.begin(), counts.end(), 1);
  std::int64_t total = std::accumulate(counts.begin(), counts.end(), std::int64_t{0});
  std::vector<float> in(r + 1, static_cast<float>(r)), out(total, -1);
  comm().allgatherv(Buffer{in.data(), r + 1}, Buffer{out.data(), total}, counts).wait();
  std::int64_t at = 0;
  for (int q = 0; q < P; ++q) {
    for (int k = 0; k <= q; ++k) EXPECT_EQ(out[at++], q);
  }
  std::vector<std::int64_t> b(5, r == 1 ? 9 : 0);
  comm().broadcast(Buffer{b.data(), 5, DType::kInt64}, 1 % P).wait();
  for (auto v : b) EXPECT_EQ(v, P > 1 ? 9 : 0);
  std::vector<std::int32_t> send(P), recv(P, -1);
  for (int j = 0; j < P; ++j) send[j] = 100 * r + j;
  comm()
      .alltoall(Buffer{send.data(), P, DType::kInt32}, Buffer{recv.data(), P, DType::kInt32})
      .wait();
  for (int j = 0; j < P; ++j) EXPECT_EQ(recv[j], 100 * j + r);
  comm().barrier().wait();
}

TEST(MpiPayloads, AllgatherBytesOfDifferentSizesPerRank) {
  const int P = comm().size(), r = comm().rank();
  auto bytes_of = [](int rank) {
    // Rank 1 sends nothing, the last rank much more than the others.
    std::size_t size = rank == 1 ? 0 : (rank == 4 ? 1 << 20 : 3 + rank);
    std::vector<std::uint8_t> bytes(size);
    for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::uint8_t>(rank + 5 * i);
    return bytes;
  };
  BytesResult result = comm().allgather_bytes(bytes_of(r));
  result.work.wait();
  ASSERT_EQ(result.data->size(), static_cast<std::size_t>(P));
  for (int q = 0; q < P; ++q) EXPECT_EQ((*result.data)[q], bytes_of(q)) << "rank " << q;
}

// Every k, every root: whichever ranks come first, the root names k distinct ranks (itself
// among them) and holds their blocks. A communicator of its own, so that the receives of late
// blocks are cancelled by its destructor while MPI is still initialised.
TEST(MpiPayloads, GatherFirstKNamesTheArrivalsAndLaterCollectivesStayCorrect) {
  CommOptions options;
  options.timeout = std::chrono::seconds(60);
  options.debug_checks = true;
  Communicator local(std::make_shared<MpiTransport>(MPI_COMM_WORLD), options);
  const int P = local.size(), r = local.rank();
  const std::int64_t n = 3;
  for (int root = 0; root < P; ++root) {
    for (int k = 1; k <= P; ++k) {
      std::vector<std::int64_t> mine(n, 1000 * k + r), out(k * n, -1);
      FirstKResult result = local.gather_first_k(Buffer{mine.data(), n, DType::kInt64},
                                                 Buffer{out.data(), k * n, DType::kInt64}, k, root);
      result.work.wait();
      if (r != root) {
        EXPECT_TRUE(result.ranks->empty());
        continue;
      }
      const std::vector<int>& ranks = *result.ranks;
      ASSERT_EQ(ranks.size(), static_cast<std::size_t>(k));
      EXPECT_TRUE(std::is_sorted(ranks.begin(), ranks.end()));
      EXPECT_TRUE(std::adjacent_find(ranks.begin(), ranks.end()) == ranks.end());
      EXPECT_NE(std::find(ranks.begin(), ranks.end(), root), ranks.end());
      for (int j = 0; j < k; ++j) {
        for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(out[j * n + i], 1000 * k + ranks[j]);
      }
    }
    std::int64_t sum = r;
    local.allreduce(Buffer{&sum, 1, DType::kInt64}, ReduceOp::kSum).wait();
    EXPECT_EQ(sum, P * (P - 1) / 2);
  }
  local.barrier().wait();
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) { return braid::testing::run_mpi_tests(argc, argv); }
