// Transport: asynchronous point-to-point messages between the ranks of a group. Algorithms are
// written once over this door; MPI, in-process threads (and later NCCL) implement it.
//
// Matching follows MPI: a receive matches the oldest unmatched message with the same
// (source, tag), and messages between a pair with the same tag arrive in the order sent.
// Receives are validated: a message whose size differs from the posted receive is a CommError,
// never a short or out-of-bounds write. Only the communication thread of the owning
// Communicator calls a transport (except the thread transport's constructor helpers).
//
// Tag spaces: tags run from 0 to max_tag(); tags below 16 are reserved for set-up exchanges
// (the Communicator's own control messages and the transports' arrival checks). Two users of one
// transport would share that space and could match each other's messages, so every Communicator
// works on its own dup().
//
// A native collective (MPI_Allreduce) is an optional capability: native() returns nullptr when
// the transport has none. So is memory shared with the ranks of the same node: shared_memory()
// (collectives/shared_memory.h) returns nullptr when the transport has none; calling it never
// communicates.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "collectives/buffer.h"

namespace braid {

using Clock = std::chrono::steady_clock;

class Request {
 public:
  Request(int peer, int tag, std::size_t bytes, bool is_recv)
      : peer_(peer), tag_(tag), bytes_(bytes), is_recv_(is_recv) {}
  virtual ~Request() = default;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  // Non-blocking: true once complete. Throws CommError if the operation failed.
  virtual bool test() = 0;
  // Blocks until complete, or returns false once the deadline passes or `*stop` (when given)
  // becomes true. The default polls test() with poll_until's backoff.
  virtual bool wait_until(Clock::time_point deadline, const std::atomic<bool>* stop);
  bool wait_until(Clock::time_point deadline) { return wait_until(deadline, nullptr); }

  int peer() const { return peer_; }
  int tag() const { return tag_; }
  std::size_t bytes() const { return bytes_; }
  bool is_recv() const { return is_recv_; }

 private:
  int peer_, tag_;
  std::size_t bytes_;
  bool is_recv_;
};

using RequestPtr = std::unique_ptr<Request>;

// Calls `done()` until it returns true (then returns true), or returns false once the deadline
// passes or `*stop` becomes true. Spins first (a fast completion is microseconds away), then
// yields, then sleeps, longer the longer it waits (up to 1 ms), so a long wait for a peer that
// is still computing, or for a slow link, does not steal a core.
bool poll_until(const std::function<bool()>& done, Clock::time_point deadline,
                const std::atomic<bool>* stop);

class SharedMemory;

class NativeCollectives {
 public:
  virtual ~NativeCollectives() = default;
  // In-place allreduce with the library's own algorithm; kAvg is not handled here. Returns false,
  // with `buffer` untouched, when the deadline passes or `*stop` becomes true first.
  virtual bool allreduce(Buffer buffer, ReduceOp op, Clock::time_point deadline,
                         const std::atomic<bool>* stop) = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* name() const = 0;
  // The memory must stay valid and (for sends) unmodified until the request completes.
  virtual RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) = 0;
  virtual RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) = 0;
  // Collective over this group: ranks with the same color form a new transport, ordered by key.
  virtual std::shared_ptr<Transport> split(int color, int key) = 0;
  // Collective: the same group with a tag space of its own (nothing sent on one is received on
  // the other). Call it from one thread at a time, like any collective. A rank that has not
  // arrived by `deadline` ends the others in a TimeoutError naming it (where the transport can
  // wait for it; the in-process one need not).
  virtual std::shared_ptr<Transport> dup(Clock::time_point deadline) {
    (void)deadline;
    return split(0, rank());
  }
  // The largest tag send/recv accept (MPI_TAG_UB for MPI, at least 32767).
  virtual int max_tag() const = 0;
  virtual NativeCollectives* native() { return nullptr; }
  // Whether isend/irecv and native() accept CUDA memory (the NCCL transport). Communicators
  // reject CUDA buffers up front for transports that do not.
  virtual bool moves_device_memory() const { return false; }
  virtual SharedMemory* shared_memory() { return nullptr; }
  // An operation on this transport failed (a timeout, a mismatch, an abort): messages of it may
  // still be on their way from peers, or queued here unmatched. The transport must then never
  // let its tag space be reused by a later transport, which would receive them as its own.
  virtual void mark_failed() {}

  // Bytes moved by completed requests (a native collective's traffic is not seen here).
  virtual std::uint64_t bytes_sent() const { return bytes_sent_.load(std::memory_order_relaxed); }
  virtual std::uint64_t bytes_recv() const { return bytes_recv_.load(std::memory_order_relaxed); }
  virtual std::uint64_t bytes_sent_to(int peer) const;
  virtual std::uint64_t bytes_recv_from(int peer) const;
  // Called by requests when they complete.
  void count(const Request& request);

 protected:
  void init_counters(int size);

 private:
  std::atomic<std::uint64_t> bytes_sent_{0}, bytes_recv_{0};
  std::unique_ptr<std::atomic<std::uint64_t>[]> sent_to_, recv_from_;
  int counter_size_ = 0;
};

}  // namespace braid
