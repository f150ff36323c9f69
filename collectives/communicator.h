// Communicator: a group of ranks over one Transport, with one communication thread that runs
// submitted collectives in FIFO order (the only thread that touches the transport). Every call
// returns at once with a Work; the training thread waits only where it needs a result.
//
// Contract:
//  - Construction is collective: the communicator works on its own dup() of the transport it is
//    given, so two communicators built over one transport never share a tag space.
//  - All ranks must submit the same collectives in the same order with matching arguments.
//    Each submission takes the next sequence number; its messages use a tag derived from that
//    number, wrapping only after max_tag() operations. With `debug_checks`, ranks exchange
//    (sequence, op, algorithm, count, dtype, root) before each collective and every rank
//    reports the first mismatch by name instead of hanging. "auto" is resolved when a
//    collective is submitted, so the check compares the algorithm that runs; the cost model it
//    uses is rank 0's on every rank (broadcast by the constructor, the communicator's first
//    collective).
//  - Every collective has a deadline (`timeout`); a peer that does not answer in time produces a
//    TimeoutError naming rank, op, sequence number and elapsed time.
//  - After any error the communicator is broken: later submissions complete at once with a
//    CommError that names the first failure (peers may be out of step; the job should end).
//  - Buffers are not copied: keep them alive and untouched until the Work completes.
//  - channel() opens another communicator over the same group (own thread, tag space, deadline),
//    so a long background exchange never queues small control collectives behind it.
// Submitting is thread-safe. abort() breaks the communicator: the running collective ends
// promptly with a CommError, queued and later ones fail. Destruction aborts and joins the
// thread, so every Work is completed and no buffer is touched once the destructor returns.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "collectives/allreduce.h"
#include "collectives/flight_recorder.h"
#include "collectives/op_context.h"
#include "collectives/partial_gather.h"
#include "collectives/transport.h"
#include "common/work.h"

namespace braid {

struct CommOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  bool debug_checks = false;
  AllreduceOptions allreduce;
  // Records every collective of this communicator and of its channels (nullptr: none).
  std::shared_ptr<FlightRecorder> recorder;
};

// What a collective is, for sequence checks and messages: "allreduce(ring, 1024 x float32)".
struct OpDesc {
  std::string op;
  std::string algorithm;
  std::int64_t count = 0;
  DType dtype = DType::kFloat32;
  int root = -1;
  // Completes without waiting for every rank (gradient coding's first k of n): debug checks
  // skip the collective cross-check before it, which would wait for the slowest rank; its
  // receives posted ahead (OpContext::recv_ahead) are checked against the operations that take
  // their sequence numbers instead.
  bool partial = false;
  // Its body first destroys every receive posted ahead (OpContext::recv_ahead) that it finds
  // unused, before it sends or receives anything: it may take a sequence number one was
  // posted for (gradient coding's drain).
  bool forgets_ahead = false;
  // This operation's own deadline; zero means the communicator's `timeout`. A long background
  // exchange (an outer round) on a channel can be given more time than a control collective.
  std::chrono::milliseconds timeout{0};
  std::string text() const;
};

// allgather_bytes' result: once `work` completed, (*data)[r] holds rank r's bytes.
struct BytesResult {
  Work work;
  std::shared_ptr<std::vector<std::vector<std::uint8_t>>> data;
};

// gather_first_k's result: once `work` completed, on the root *ranks holds the k ranks whose
// blocks are in the output, ascending (the root among them); elsewhere it is empty.
struct FirstKResult {
  Work work;
  std::shared_ptr<std::vector<int>> ranks;
};

class Communicator : private AheadReceives {
 public:
  // Collective over the transport's group (it calls transport->dup(), bounded by
  // options.timeout).
  explicit Communicator(std::shared_ptr<Transport> transport, CommOptions options = {});
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  Transport& transport() { return *transport_; }
  const CommOptions& options() const { return options_; }

  // In place. `algorithm` is one of allreduce_names(); an unknown name throws ConfigError here.
  [[nodiscard]] Work allreduce(Buffer buffer, ReduceOp op, const std::string& algorithm = "auto");
  // Fusion: the buffers (one dtype) are packed into one flat bucket, reduced as one message and
  // unpacked, so many small tensors pay one latency.
  [[nodiscard]] Work allreduce_fused(std::vector<Buffer> buffers, ReduceOp op,
                                     const std::string& algorithm = "auto");
  [[nodiscard]] Work reduce_scatter(Buffer input, Buffer output, ReduceOp op);
  [[nodiscard]] Work allgather(Buffer input, Buffer output);
  [[nodiscard]] Work allgatherv(Buffer input, Buffer output, std::vector<std::int64_t> counts);
  [[nodiscard]] Work broadcast(Buffer buffer, int root);
  [[nodiscard]] Work gather(Buffer input, Buffer output, int root);
  [[nodiscard]] Work alltoall(Buffer input, Buffer output);
  [[nodiscard]] Work alltoallv(Buffer input, std::vector<std::int64_t> send_counts, Buffer output,
                               std::vector<std::int64_t> recv_counts);
  [[nodiscard]] Work barrier();
  // Every rank's byte vector, sizes differing per rank (compressed payloads). A peer announcing a
  // negative or oversized count (collectives.h: kMaxPayloadBytes) fails with a CommError naming
  // it. Reductions are not offered on bytes (DType::kUInt8).
  [[nodiscard]] BytesResult allgather_bytes(std::vector<std::uint8_t> mine);
  // Partial gather (gradient coding): the root's `output` (k * input.count elements) receives the
  // blocks of the first k ranks to arrive, its own included; non-root ranks only send `input`.
  // All ranks still call it in the same order with the same k and root. A late block is received
  // into memory the communicator owns and discarded at a later operation (each operation has
  // its own tag, so it never matches a later one); a rank that never sends costs one posted
  // receive, cancelled when the communicator is destroyed.
  [[nodiscard]] FirstKResult gather_first_k(Buffer input, Buffer output, int k, int root);

  // Runs `body` on the communication thread as the next collective. Used by the methods above
  // and by layers that compose their own exchanges.
  [[nodiscard]] Work submit(OpDesc desc, std::function<void(OpContext&)> body);

  // Collective: a new communicator over a duplicate of this one's transport, with its own
  // communication thread, tag space and options. The duplication runs as the next job on this
  // communicator's thread (the only thread that may use its transport), so every rank must call
  // channel() at the same point in its sequence of collectives. Blocks until it is ready. A rank
  // that has not called it within the new channel's `timeout` ends the others in a TimeoutError
  // naming it (Transport::dup); with `debug_checks` the sequence check before it reports a
  // mismatched call instead.
  std::shared_ptr<Communicator> channel(CommOptions options);

  // Breaks the communicator without destroying it: the running collective ends promptly with a
  // CommError naming `reason`, queued and later submissions fail with it. For owners (e.g. a
  // strategy's destructor) that must stop the exchanges before freeing their buffers; they
  // still wait on their Works (which then complete quickly) before freeing. The first reason
  // sticks.
  void abort(std::string reason);

  // The algorithm an allreduce of `bytes` named `name` runs: "auto" becomes "hierarchical" on
  // a layout of several nodes of several ranks, else the cost model's pick; other names stay.
  std::string resolve(const std::string& name, std::size_t bytes) const;
  // Collective (every rank calls it, in the same order as the other collectives; blocking and
  // without a deadline, like channel()): `bytes` of zeroed memory in the shared memory of this
  // rank's node, valid until the communicator is destroyed. A buffer at the same offset of it on
  // every rank of a node is registered: "shm" and "hierarchical" read peers' copies in place
  // instead of copying the buffer in first. nullptr on every rank of a node where there is
  // nothing to share (no shared memory in the transport, or one rank on the node).
  void* allocate_shared(std::size_t bytes);
  // The algorithm to name for buffers from allocate_shared(): "auto" becomes "shm" when the
  // ranks are several on one node (on several nodes resolve() already picks "hierarchical");
  // other names stay.
  std::string registered_algorithm(const std::string& name) const;
  std::uint64_t bytes_sent() const { return transport_->bytes_sent(); }
  std::uint64_t bytes_recv() const { return transport_->bytes_recv(); }
  // Bytes this rank read from other ranks' memory on its node (shm, hierarchical); never part of
  // bytes_sent/bytes_recv, which count network messages only.
  std::uint64_t shared_memory_bytes() const;

 private:
  int tag_of(std::uint64_t sequence) const;
  int reserve(std::uint64_t from, std::uint64_t ahead) override;
  // Throws CommError when a receive was posted ahead for `seq` by an operation unlike `desc`.
  void check_ahead(const OpDesc& desc, std::uint64_t seq);
  struct Job {
    OpDesc desc;
    std::function<void(OpContext&)> body;
    Work work;
    std::uint64_t seq = 0;  // in submission order: the sequence number it runs as
  };
  // Flight records (no-ops without a recorder).
  void record_end(const Job& job, const std::string& error = {});
  void loop();
  void run(Job& job);
  std::exception_ptr abort_error(const std::string& what) const;
  void cross_check(const OpDesc& desc, std::uint64_t seq);
  Allreduce& algorithm(const std::string& name);
  // The constructor's first collective: rank 0's options_.allreduce.cost_model to every rank.
  void share_cost_model();
  // CommError naming `op` when `buffer` is CUDA memory and the transport moves only CPU memory.
  void check_device(const char* op, const Buffer& buffer) const;

  std::shared_ptr<Transport> transport_;
  CommOptions options_;
  int rank_, size_;
  std::int64_t tag_span_;  // tags an operation may use: [kFirstOpTag, kFirstOpTag + tag_span_)
  const SharedMemory* shared_memory_;  // the transport's (nullptr: none)
  const bool hierarchical_;            // "auto" means "hierarchical" (hierarchical_applies)
  const int flight_channel_;           // this communicator's channel in options_.recorder
  std::atomic<int>* const waiting_;    // its slot there for the peer waited for (or nullptr)

  mutable std::mutex mutex_;
  std::condition_variable queued_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::uint64_t submitted_ = 0;
  std::string abort_reason_;
  std::atomic<bool> aborted_{false};  // watched by the running operation's waits

  // Communication thread only.
  std::uint64_t seq_ = 0;
  std::string broken_;
  std::map<std::string, std::unique_ptr<Allreduce>> algorithms_;
  Scratch scratch_;
  LateReceives late_;                      // receives of past partial gathers still posted
  std::map<std::uint64_t, OpDesc> ahead_;  // sequence number -> the operation that posted ahead
  const OpDesc* running_ = nullptr;        // the job whose body runs now
  std::thread thread_;
};

}  // namespace braid
