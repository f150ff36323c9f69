// OpContext: what one running collective sees of its communicator: the transport, the tag
// reserved for this operation (derived from its sequence number, so a rank that runs ahead
// into the next operation cannot be matched with this one), and the operation's deadline.
// Algorithms are straight-line blocking code over send/recv/wait; only the communication
// thread runs them. Every wait also watches the communicator's abort flag, so an aborted or
// destroyed communicator ends a running operation promptly with a CommError.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "collectives/transport.h"

namespace braid {

// The communicator's record of receives posted for later operations (OpContext::recv_ahead).
class AheadReceives {
 public:
  virtual ~AheadReceives() = default;
  // Records that operation `from` posted a receive for operation `from + ahead`; returns that
  // operation's tag.
  virtual int reserve(std::uint64_t from, std::uint64_t ahead) = 0;
};

class OpContext {
 public:
  OpContext(Transport& transport, int tag, Clock::time_point deadline, std::string op,
            std::uint64_t seq, const std::atomic<bool>* aborted = nullptr)
      : transport_(transport),
        tag_(tag),
        deadline_(deadline),
        op_(std::move(op)),
        seq_(seq),
        aborted_(aborted) {}

  Transport& transport() const { return transport_; }
  int rank() const { return transport_.rank(); }
  int size() const { return transport_.size(); }
  int tag() const { return tag_; }
  Clock::time_point deadline() const { return deadline_; }
  const std::string& op() const { return op_; }
  std::uint64_t seq() const { return seq_; }
  // Set when the communicator is aborted; pass it to any wait that is not through wait().
  const std::atomic<bool>* aborted() const { return aborted_; }

  RequestPtr send(const void* data, std::size_t bytes, int peer) {
    return transport_.isend(data, bytes, peer, tag_);
  }
  RequestPtr recv(void* data, std::size_t bytes, int peer) {
    return transport_.irecv(data, bytes, peer, tag_);
  }
  RequestPtr send(Buffer b, int peer) { return send(b.data, b.bytes(), peer); }
  RequestPtr recv(Buffer b, int peer) { return recv(b.data, b.bytes(), peer); }

  // A receive for the operation `ahead` (>= 1) submissions after this one, posted now under
  // that operation's tag: for an exchange whose later results may arrive before this rank
  // reaches their operations (gradient coding's late ranks). The communicator records it, and
  // the operation that runs with that sequence number must be of the same kind as this one
  // (op, algorithm, count, dtype, root) or be described as dropping them (OpDesc::
  // forgets_ahead), else it fails naming both before it exchanges anything.
  RequestPtr recv_ahead(void* data, std::size_t bytes, int peer, std::uint64_t ahead);
  void set_ahead(AheadReceives* ahead) { ahead_ = ahead; }

  // Tells the flight recorder which rank this operation now waits for (wait() does it for each
  // request), so a stall report and a flight record can name it. A no-op without a recorder.
  void waiting_for(int peer) const {
    if (waiting_) waiting_->store(peer, std::memory_order_relaxed);
  }
  void set_waiting_slot(std::atomic<int>* slot) { waiting_ = slot; }

  // Block until the request completes; TimeoutError naming rank, op, sequence number and peer
  // when the deadline passes first.
  void wait(Request& request);
  void wait_all(std::vector<RequestPtr>& requests);
  // Send `out` to `to` and receive `in` from `from`, both complete on return.
  void sendrecv(Buffer out, int to, Buffer in, int from);
  // For a wait that returned false: throws CommError if the communicator was aborted (its
  // owner adds the reason), else the
  // TimeoutError naming rank, op, sequence number, elapsed time and what it was `waiting_for`.
  [[noreturn]] void fail_wait(const std::string& waiting_for) const;

 private:
  Transport& transport_;
  int tag_;
  Clock::time_point deadline_;
  std::string op_;
  std::uint64_t seq_;
  const std::atomic<bool>* aborted_;
  AheadReceives* ahead_ = nullptr;       // the communicator's; nullptr: recv_ahead is unavailable
  std::atomic<int>* waiting_ = nullptr;  // the flight recorder's slot for this channel
  Clock::time_point start_ = Clock::now();
};

}  // namespace braid
