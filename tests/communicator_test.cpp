// Communicator lifecycle with threads as ranks: channels run independently of their parent and
// of each other, tags do not wrap early, and abort() and destruction end a collective that is
// blocked on a silent peer promptly (the 60 s deadlines here are never what ends a test).
#include <gtest/gtest.h>

#include <climits>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "collectives/communicator.h"
#include "collectives/transport_thread.h"
#include "common/error.h"
#include "tests/forwarding_transport.h"

namespace braid {
namespace {

CommOptions generous() {
  CommOptions options;
  options.timeout = std::chrono::seconds(60);
  return options;
}

// Runs fn(rank, transport) on n threads over one in-process world; rethrows the first failure.
void on_ranks(int n, const std::function<void(int, std::shared_ptr<Transport>)>& fn) {
  auto transports = ThreadTransport::create_world(n);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(r, transports[r]);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (auto& error : errors) {
    if (error) std::rethrow_exception(error);
  }
}

// A one-shot signal between rank threads; set on destruction too, so a rank that fails early
// never leaves its peer waiting forever.
class Signal {
 public:
  ~Signal() { set(); }
  void set() {
    std::call_once(once_, [&] { promise_.set_value(); });
  }
  void wait() { future_.wait(); }

 private:
  std::promise<void> promise_;
  std::shared_future<void> future_ = promise_.get_future().share();
  std::once_flag once_;
};

Buffer one(std::int64_t& x) { return Buffer{&x, 1, DType::kInt64}; }

// The message of the CommError (not a TimeoutError) that `work` completed with.
std::string comm_error_of(const Work& work) {
  try {
    work.wait();
  } catch (const TimeoutError& e) {
    ADD_FAILURE() << "a timeout, not an abort: " << e.what();
    return e.what();
  } catch (const CommError& e) {
    return e.what();
  }
  ADD_FAILURE() << "completed without an error";
  return "";
}

TEST(Channel, CompletesWhileTheParentWaitsOnAPeer) {
  Signal channel_done;
  on_ranks(2, [&](int rank, std::shared_ptr<Transport> transport) {
    Communicator parent(transport, generous());
    auto channel = parent.channel(generous());
    std::int64_t x = 0, v = 1;
    if (rank == 0) {
      Work blocked = parent.broadcast(one(x), /*root=*/1);  // rank 1 broadcasts only later
      channel->allreduce(one(v), ReduceOp::kSum, "ring").wait();
      EXPECT_EQ(v, 2);
      // Rank 1 broadcasts only after the signal below, so the parent must still be blocked.
      EXPECT_FALSE(blocked.is_completed());
      channel_done.set();
      blocked.wait();
      EXPECT_EQ(x, 42);
    } else {
      channel->allreduce(one(v), ReduceOp::kSum, "ring").wait();
      EXPECT_EQ(v, 2);
      channel_done.wait();
      x = 42;
      parent.broadcast(one(x), /*root=*/1).wait();
    }
  });
}

// Both channels' first operation has sequence number 0, hence the same tag; rank 1 receives
// them in the opposite order from the one rank 0 sent them in. On a shared tag space rank 1
// would take channel a's message for channel b's.
TEST(Channel, TwoChannelsDoNotShareTags) {
  on_ranks(2, [&](int rank, std::shared_ptr<Transport> transport) {
    Communicator parent(transport, generous());
    auto a = parent.channel(generous());
    auto b = parent.channel(generous());
    std::int64_t x = rank == 0 ? 1 : 0, y = rank == 0 ? 2 : 0;
    if (rank == 0) {
      a->broadcast(one(x), 0).wait();
      b->broadcast(one(y), 0).wait();
    } else {
      b->broadcast(one(y), 0).wait();
      a->broadcast(one(x), 0).wait();
    }
    EXPECT_EQ(x, 1) << "rank " << rank;
    EXPECT_EQ(y, 2) << "rank " << rank;
  });
}

// The same for two communicators built directly over one transport: each works on a dup().
TEST(Communicator, TwoOverOneTransportDoNotShareTags) {
  on_ranks(2, [&](int rank, std::shared_ptr<Transport> transport) {
    Communicator a(transport, generous());
    Communicator b(transport, generous());
    std::int64_t x = rank == 0 ? 1 : 0, y = rank == 0 ? 2 : 0;
    if (rank == 0) {
      a.broadcast(one(x), 0).wait();
      b.broadcast(one(y), 0).wait();
    } else {
      b.broadcast(one(y), 0).wait();
      a.broadcast(one(x), 0).wait();
    }
    EXPECT_EQ(x, 1) << "rank " << rank;
    EXPECT_EQ(y, 2) << "rank " << rank;
  });
}

// Forwards to a thread transport and records the tag of every send.
class TagRecorder : public testing::ForwardingTransport {
 public:
  TagRecorder(std::shared_ptr<Transport> inner, std::shared_ptr<std::vector<int>> tags)
      : ForwardingTransport(std::move(inner)), tags_(std::move(tags)) {}
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override {
    tags_->push_back(tag);
    return inner_->isend(data, bytes, peer, tag);
  }

 private:
  std::shared_ptr<Transport> wrap(std::shared_ptr<Transport> duplicate) override {
    return std::make_shared<TagRecorder>(std::move(duplicate), tags_);
  }
  std::shared_ptr<std::vector<int>> tags_;
};

TEST(Communicator, TagsDoNotWrapAfterSixteenThousandOperations) {
  EXPECT_EQ(ThreadTransport::create_world(1)[0]->max_tag(), INT_MAX);
  constexpr int kOps = 16100;
  on_ranks(2, [&](int rank, std::shared_ptr<Transport> transport) {
    auto tags = std::make_shared<std::vector<int>>();
    {
      Communicator comm(std::make_shared<TagRecorder>(transport, tags), generous());
      tags->clear();  // the constructor's own collective (the cost model) is not counted
      for (int op = 0; op < kOps; ++op) {
        std::int64_t x = 7;
        comm.broadcast(one(x), /*root=*/0).wait();
      }
    }
    if (rank != 0) return;
    ASSERT_EQ(tags->size(), static_cast<std::size_t>(kOps));  // one send per broadcast
    for (int op = 1; op < kOps; ++op) {
      ASSERT_GT((*tags)[op], (*tags)[op - 1]) << "tag of operation " << op << " wrapped";
    }
  });
}

// A receive posted ahead (OpContext::recv_ahead) takes the message of the later operation it
// was posted for: rank 1 posts it in operation "a", rank 0 sends only in the next "a".
TEST(ReceivesPostedAhead, TakeTheLaterOperationsMessage) {
  on_ranks(2, [](int rank, std::shared_ptr<Transport> transport) {
    Communicator comm(transport, generous());
    const OpDesc desc{"a", "", 1, DType::kInt64};
    std::int64_t value = 0;
    RequestPtr ahead;
    comm.submit(desc,
                [&](OpContext& ctx) {
                  if (rank == 1) ahead = ctx.recv_ahead(&value, sizeof value, 0, 1);
                })
        .wait();
    comm.submit(desc,
                [&](OpContext& ctx) {
                  if (rank == 0) {
                    std::int64_t sent = 42;
                    auto send = ctx.send(&sent, sizeof sent, 1);
                    ctx.wait(*send);
                  } else {
                    ctx.wait(*ahead);
                  }
                })
        .wait();
    if (rank == 1) EXPECT_EQ(value, 42);
  });
}

// Operation "a" on one rank, posting a receive (from itself) for the next operation.
RequestPtr post_one_ahead(Communicator& comm, std::int64_t& value) {
  RequestPtr ahead;
  comm.submit({"a", "", 1, DType::kInt64},
              [&](OpContext& ctx) { ahead = ctx.recv_ahead(&value, sizeof value, 0, 1); })
      .wait();
  return ahead;
}

// Another kind of operation at the sequence number a receive was posted for would have its
// message taken by that receive: it fails naming both before it exchanges anything, unless it
// is described as dropping the receives first.
TEST(ReceivesPostedAhead, AnotherKindOfOperationAtTheirNumberFails) {
  on_ranks(1, [](int, std::shared_ptr<Transport> transport) {
    Communicator comm(transport, generous());
    std::int64_t value = 0;
    RequestPtr ahead = post_one_ahead(comm, value);
    bool ran = false;
    Work other = comm.submit({"b", "", 1, DType::kInt64}, [&](OpContext&) { ran = true; });
    const std::string message = comm_error_of(other);
    EXPECT_FALSE(ran);
    EXPECT_NE(message.find("a(1 x int64) posted a receive ahead"), std::string::npos) << message;
    EXPECT_NE(message.find("b(1 x int64)"), std::string::npos) << message;
  });
}

TEST(ReceivesPostedAhead, AnOperationThatDropsThemMayTakeTheirNumber) {
  on_ranks(1, [](int, std::shared_ptr<Transport> transport) {
    Communicator comm(transport, generous());
    std::int64_t value = 0;
    RequestPtr ahead = post_one_ahead(comm, value);
    OpDesc drain{"drain", "", 0, DType::kUInt8};
    drain.forgets_ahead = true;
    comm.submit(drain, [&](OpContext&) { ahead.reset(); }).wait();
    std::int64_t x = 5;
    comm.broadcast(one(x), 0).wait();
    EXPECT_EQ(x, 5);
  });
}

// A deadline given with one operation overrides the communicator's (60 s here, longer than the
// test's CTest timeout): the receive from a silent peer fails on its own 200 ms deadline.
TEST(Communicator, AnOperationsOwnDeadlineOverridesTheCommunicators) {
  on_ranks(2, [](int rank, std::shared_ptr<Transport> transport) {
    Communicator comm(transport, generous());
    if (rank == 1) return;  // never sends
    OpDesc desc{"probe", "", 1, DType::kInt64};
    desc.timeout = std::chrono::milliseconds(200);
    std::int64_t x = 0;
    Work work = comm.submit(desc, [&](OpContext& ctx) {
      auto request = ctx.recv(&x, sizeof x, 1);
      ctx.wait(*request);
    });
    EXPECT_THROW(work.wait(), TimeoutError);
  });
}

TEST(Communicator, DestroyingWithAJobBlockedOnAPeerReturnsPromptly) {
  Signal destroyed;
  on_ranks(2, [&](int rank, std::shared_ptr<Transport> transport) {
    auto comm = std::make_unique<Communicator>(transport, generous());
    if (rank == 1) {
      destroyed.wait();  // silent: never answers rank 0
      return;
    }
    std::promise<void> started;
    std::int64_t x = 0;
    Work blocked = comm->submit({"recv", "test", 1, DType::kInt64}, [&](OpContext& ctx) {
      started.set_value();
      auto request = ctx.recv(&x, sizeof x, /*peer=*/1);
      ctx.wait(*request);
    });
    Work queued = comm->barrier();
    started.get_future().wait();
    comm.reset();  // returns long before the 60 s deadline, or the test times out
    EXPECT_TRUE(blocked.is_completed());
    EXPECT_TRUE(queued.is_completed());
    std::string running = comm_error_of(blocked), waiting = comm_error_of(queued);
    EXPECT_NE(running.find("interrupted waiting to receive 8 bytes from rank 1"), std::string::npos)
        << running;
    EXPECT_NE(running.find("the communicator was destroyed"), std::string::npos) << running;
    EXPECT_NE(waiting.find("barrier(dissemination, 0 x float32) was cancelled"), std::string::npos)
        << waiting;
    destroyed.set();
  });
}

TEST(Communicator, AbortFailsTheRunningAndLaterCollectives) {
  Signal aborted;
  on_ranks(2, [&](int rank, std::shared_ptr<Transport> transport) {
    Communicator comm(transport, generous());
    if (rank == 1) {
      aborted.wait();
      comm.abort("rank 1 is done");
      std::int64_t x = 1;
      std::string later = comm_error_of(comm.allreduce(one(x), ReduceOp::kSum, "ring"));
      EXPECT_NE(later.find("was not run (communicator aborted: rank 1 is done)"), std::string::npos)
          << later;
      return;
    }
    std::promise<void> started;
    Work blocked = comm.submit({"recv", "test", 1, DType::kInt64}, [&](OpContext& ctx) {
      started.set_value();
      std::int64_t x = 0;
      auto request = ctx.recv(&x, sizeof x, /*peer=*/1);
      ctx.wait(*request);
    });
    started.get_future().wait();
    comm.abort("strategy destroyed");
    comm.abort("a second reason is ignored");
    std::string running = comm_error_of(blocked);
    EXPECT_NE(running.find("interrupted waiting to receive 8 bytes from rank 1 (communicator "
                           "aborted: strategy destroyed)"),
              std::string::npos)
        << running;
    std::string later = comm_error_of(comm.barrier());
    EXPECT_NE(later.find("barrier(dissemination, 0 x float32) was not run"), std::string::npos)
        << later;
    aborted.set();
  });
}

// The flight recorder keeps the newest operations of each communicator and channel, in order,
// with their states and times; a channel is a channel of its own.
TEST(FlightRecorder, KeepsTheNewestOperationsOfEveryChannel) {
  on_ranks(2, [](int rank, std::shared_ptr<Transport> transport) {
    CommOptions options = generous();
    options.recorder = std::make_shared<FlightRecorder>(3, rank);
    Communicator comm(transport, options);
    float x = 1;
    for (int i = 0; i < 5; ++i)
      comm.allreduce(Buffer{&x, 1, DType::kFloat32}, ReduceOp::kSum, "ring").wait();
    comm.barrier().wait();
    auto channel = comm.channel(generous());  // inherits the recorder
    channel->barrier().wait();
    const std::vector<FlightChannel> all = options.recorder->snapshot();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].name, "world");
    const std::vector<FlightRecord>& world = all[0].records;
    ASSERT_EQ(world.size(), 3u);  // the capacity: older ones dropped
    // share_cost_model (#0), five allreduces (#1..5), the barrier (#6), the channel's dup (#7).
    EXPECT_EQ(world[0].seq, 5u);
    EXPECT_EQ(world[0].op, "allreduce");
    EXPECT_EQ(world[0].algorithm, "ring");
    EXPECT_EQ(world[1].op, "barrier");
    EXPECT_EQ(world[2].op, "channel");
    for (const FlightRecord& r : world) {
      EXPECT_EQ(r.state, OpState::kCompleted) << r.op;
      EXPECT_LE(r.queued_us, r.started_us);
      EXPECT_LE(r.started_us, r.ended_us);
      EXPECT_FALSE(r.stalled);
    }
    ASSERT_FALSE(all[1].records.empty());
    EXPECT_EQ(all[1].records.back().op, "barrier");
    EXPECT_EQ(all[1].records.back().channel, 1);
  });
}

// Rank 1 holds back its allreduce until rank 0's recorder reports the stall: the report names
// rank 1 and the operation; the operation then completes and its record says it stalled.
TEST(FlightRecorder, AStallNamesTheRankWaitedFor) {
  std::vector<std::shared_ptr<FlightRecorder>> recorders = {
      std::make_shared<FlightRecorder>(10, 0), std::make_shared<FlightRecorder>(10, 1)};
  Signal reported;
  on_ranks(2, [&](int rank, std::shared_ptr<Transport> transport) {
    CommOptions options = generous();
    options.recorder = recorders[rank];
    Communicator comm(transport, options);
    float x = 1;
    if (rank == 0) {
      Work work = comm.allreduce(Buffer{&x, 1, DType::kFloat32}, ReduceOp::kSum, "ring");
      // Negative control: not yet for a threshold far above what the wait can reach here.
      EXPECT_TRUE(recorders[0]->stalls(std::chrono::minutes(10)).empty());
      std::vector<Stall> stalls;
      const auto give_up = Clock::now() + std::chrono::seconds(30);
      while (stalls.empty() && Clock::now() < give_up) {
        stalls = recorders[0]->stalls(std::chrono::milliseconds(50));
        std::this_thread::yield();
      }
      reported.set();
      ASSERT_EQ(stalls.size(), 1u);
      EXPECT_EQ(stalls[0].record.waiting_for, 1);
      EXPECT_EQ(stalls[0].record.op, "allreduce");
      EXPECT_NE(stalls[0].text().find("for rank 1"), std::string::npos) << stalls[0].text();
      EXPECT_TRUE(recorders[0]->stalls(std::chrono::milliseconds(50)).empty());  // once
      work.wait();
      const std::vector<FlightChannel> channels = recorders[0]->snapshot();
      const FlightRecord& last = channels[0].records.back();
      EXPECT_EQ(last.state, OpState::kCompleted);
      EXPECT_TRUE(last.stalled);
      EXPECT_EQ(x, 2.0f);
    } else {
      reported.wait();
      comm.allreduce(Buffer{&x, 1, DType::kFloat32}, ReduceOp::kSum, "ring").wait();
    }
  });
}

// An aborted communicator's running and queued operations are recorded as failed, with why.
TEST(FlightRecorder, RecordsFailures) {
  on_ranks(2, [](int rank, std::shared_ptr<Transport> transport) {
    CommOptions options = generous();
    options.recorder = std::make_shared<FlightRecorder>(10, rank);
    Communicator comm(transport, options);
    if (rank == 1) return;  // rank 0's allreduce waits for a rank that never joins
    float x = 1;
    Work running = comm.allreduce(Buffer{&x, 1, DType::kFloat32}, ReduceOp::kSum, "ring");
    comm.abort("the test gives up");
    EXPECT_THROW(running.wait(), CommError);
    const std::vector<FlightChannel> channels = options.recorder->snapshot();
    const FlightRecord& last = channels[0].records.back();
    EXPECT_EQ(last.state, OpState::kFailed);
    EXPECT_FALSE(last.error.empty());
  });
}

}  // namespace
}  // namespace braid
