// Tier 2: the MPI transport's liveness and isolation under mpirun (np 2 and 3): `native` obeys
// the deadline, tags reach MPI_TAG_UB, and a channel's traffic never matches its parent's.
// Each test builds its own communicators (construction is collective), so one broken by a
// timeout does not affect the next test.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "collectives/communicator.h"
#include "collectives/transport_mpi.h"
#include "common/error.h"
#include "tests/mpi_test_main.h"

namespace braid {
namespace {

using testing::world_rank;
using testing::world_size;

CommOptions with_timeout(std::chrono::milliseconds timeout) {
  CommOptions options;
  options.timeout = timeout;
  return options;
}

Buffer one(std::int64_t& x) { return Buffer{&x, 1, DType::kInt64}; }

// Rank 1 does not join the native allreduce until every other rank has timed out. The others
// time out in the count-and-dtype agreement that precedes the library's collective, with their
// buffers untouched. Rank 1, arriving late, completes that abandoned agreement (its scratch
// copy held the right input, and the others make MPI progress in a barrier) and then times out
// in the collective itself, which nobody else joins any more: its buffer is untouched too, and
// no rank waits for ever.
TEST(MpiNative, TimesOutWhenARankNeverJoins) {
  const int rank = world_rank();
  const bool late = rank == 1;
  Communicator comm(std::make_shared<MpiTransport>(MPI_COMM_WORLD),
                    with_timeout(std::chrono::milliseconds(300)));
  std::vector<std::int64_t> data(1000, rank + 1);
  const Buffer buffer{data.data(), 1000, DType::kInt64};
  auto expect_timeout = [&](const char* waiting_for) {
    try {
      comm.allreduce(buffer, ReduceOp::kSum, "native").wait();
      ADD_FAILURE() << "native allreduce completed on rank " << rank << " without its peers";
    } catch (const TimeoutError& e) {
      const std::string message = e.what();
      // Sequence number 0 is the constructor's cost-model broadcast.
      EXPECT_NE(message.find("allreduce(native, 1000 x int64) (sequence number 1) timed out"),
                std::string::npos)
          << message;
      EXPECT_NE(message.find(waiting_for), std::string::npos) << message;
    }
    EXPECT_EQ(data[0], rank + 1) << "the caller's buffer was written after a timeout";
    EXPECT_EQ(data[999], rank + 1);
  };
  if (!late) expect_timeout("waiting to agree on the native allreduce's count and dtype");
  MPI_Barrier(MPI_COMM_WORLD);  // every other rank has timed out
  if (late) expect_timeout("waiting to complete the native allreduce");
  MPI_Barrier(MPI_COMM_WORLD);  // keeps the others progressing the abandoned agreement
}

TEST(MpiNative, CompletesWithinTheDeadline) {
  const int rank = world_rank(), P = world_size();
  Communicator comm(std::make_shared<MpiTransport>(MPI_COMM_WORLD),
                    with_timeout(std::chrono::seconds(60)));
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    std::vector<float> data(257, 0.0f);
    std::vector<std::uint16_t> half(257, 0);
    Buffer buffer = dtype == DType::kFloat32 ? Buffer{data.data(), 257, dtype}
                                             : Buffer{half.data(), 257, dtype};
    if (dtype == DType::kFloat32) {
      for (float& x : data) x = static_cast<float>(rank + 1);
    } else {
      for (auto& x : half) x = 0x3f80;  // bfloat16 1.0
    }
    comm.allreduce(buffer, ReduceOp::kSum, "native").wait();
    if (dtype == DType::kFloat32) {
      EXPECT_EQ(data[256], static_cast<float>(P * (P + 1) / 2));
    } else {
      const std::uint32_t bits = std::uint32_t{half[256]} << 16;
      float value;
      std::memcpy(&value, &bits, sizeof value);
      EXPECT_EQ(value, static_cast<float>(P));  // small integers are exact in bfloat16
    }
  }
}

TEST(MpiTransport, MaxTagIsMpiTagUb) {
  MpiTransport transport(MPI_COMM_WORLD);
  EXPECT_GE(transport.max_tag(), 32767);  // the MPI standard's minimum
  EXPECT_GT(transport.max_tag(), 16000);  // the span that used to wrap
  void* value = nullptr;
  int flag = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &value, &flag);
  ASSERT_TRUE(flag);
  EXPECT_EQ(transport.max_tag(), *static_cast<int*>(value));
  EXPECT_EQ(transport.dup(Clock::now() + std::chrono::seconds(60))->max_tag(), transport.max_tag());
}

// Rank 0 sends on the parent, then on the channel; the others receive in the opposite order.
// Both operations have sequence number 2 (the parent's channel() took 0 and one barrier 1; the
// channel ran two barriers), so on one MPI communicator the tags would match crosswise.
TEST(MpiChannel, TrafficDoesNotMatchTheParents) {
  const int rank = world_rank();
  Communicator parent(std::make_shared<MpiTransport>(MPI_COMM_WORLD),
                      with_timeout(std::chrono::seconds(60)));
  auto channel = parent.channel(with_timeout(std::chrono::seconds(60)));
  parent.barrier().wait();
  channel->barrier().wait();
  channel->barrier().wait();
  std::int64_t x = rank == 0 ? 11 : 0, y = rank == 0 ? 22 : 0;
  if (rank == 0) {
    parent.broadcast(one(x), 0).wait();
    channel->broadcast(one(y), 0).wait();
  } else {
    channel->broadcast(one(y), 0).wait();
    parent.broadcast(one(x), 0).wait();
  }
  EXPECT_EQ(x, 11) << "rank " << rank;
  EXPECT_EQ(y, 22) << "rank " << rank;
  std::int64_t sum = 1;
  channel->allreduce(one(sum), ReduceOp::kSum, "ring").wait();
  EXPECT_EQ(sum, world_size());
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) { return braid::testing::run_mpi_tests(argc, argv); }
