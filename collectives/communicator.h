// Communicator: a group of ranks over one Transport, with one communication thread that runs
// submitted collectives in FIFO order (the only thread that touches the transport). Every call
// returns at once with a Work; the training thread waits only where it needs a result.
//
// Contract:
//  - All ranks must submit the same collectives in the same order with matching arguments.
//    Each submission takes the next sequence number; its messages use a tag derived from that
//    number. With `debug_checks`, ranks exchange (sequence, op, algorithm, count, dtype, root)
//    before each collective and every rank reports the first mismatch by name instead of hanging.
//  - Every collective has a deadline (`timeout`); a peer that does not answer in time produces a
//    TimeoutError naming rank, op, sequence number and elapsed time.
//  - After any error the communicator is broken: later submissions complete at once with a
//    CommError that names the first failure (peers may be out of step; the job should end).
//  - Buffers are not copied: keep them alive and untouched until the Work completes.
// Submitting is thread-safe; destruction waits for the running collective and fails the rest.
#pragma once

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
#include "collectives/transport.h"
#include "common/work.h"

namespace braid {

struct CommOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  bool debug_checks = false;
  AllreduceOptions allreduce;
};

// What a collective is, for sequence checks and messages: "allreduce(ring, 1024 x float32)".
struct OpDesc {
  std::string op;
  std::string algorithm;
  std::int64_t count = 0;
  DType dtype = DType::kFloat32;
  int root = -1;
  std::string text() const;
};

class Communicator {
 public:
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

  // Runs `body` on the communication thread as the next collective. Used by the methods above
  // and by layers that compose their own exchanges.
  [[nodiscard]] Work submit(OpDesc desc, std::function<void(OpContext&)> body);

  std::uint64_t bytes_sent() const { return transport_->bytes_sent(); }
  std::uint64_t bytes_recv() const { return transport_->bytes_recv(); }
  // Sequence number the next submission will get.
  std::uint64_t next_sequence() const;

 private:
  struct Job {
    OpDesc desc;
    std::function<void(OpContext&)> body;
    Work work;
  };
  void loop();
  void run(Job& job);
  void cross_check(const OpDesc& desc, std::uint64_t seq);
  Allreduce& algorithm(const std::string& name);

  std::shared_ptr<Transport> transport_;
  CommOptions options_;
  int rank_, size_;

  mutable std::mutex mutex_;
  std::condition_variable queued_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::uint64_t submitted_ = 0;

  // Communication thread only.
  std::uint64_t seq_ = 0;
  std::string broken_;
  std::map<std::string, std::unique_ptr<Allreduce>> algorithms_;
  Scratch scratch_;
  std::thread thread_;
};

}  // namespace braid
