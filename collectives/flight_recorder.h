// FlightRecorder: the last N operations of every communicator and channel of one rank, so that
// after a hang or a failure each rank can say what it was doing (PyTorch's NCCL flight
// recorder, Horovod's stall inspector). A Communicator given one records each collective when
// it is queued, when it starts (with the peer it is waiting for, updated by every wait) and when
// it completes or fails. runtime/ writes the records to a file (runtime/flight_file.h) and
// watches them for stalls; `braid doctor` compares the files of all ranks.
//
// Channels are numbered in the order communicators register (the world's first, then each
// channel() in the order every rank opens it), so channel c and sequence number s name the same
// collective on every rank. Thread-safe: communication threads record, a watcher reads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "collectives/buffer.h"

namespace braid {

struct OpDesc;

enum class OpState { kQueued, kStarted, kCompleted, kFailed };
const char* op_state_name(OpState state);

// Unix time in microseconds: the clock of every flight timestamp.
std::int64_t flight_clock_us();

struct FlightRecord {
  int channel = 0;
  std::uint64_t seq = 0;
  std::string op, algorithm;
  std::int64_t count = 0;
  DType dtype = DType::kFloat32;
  int root = -1;
  OpState state = OpState::kQueued;
  int waiting_for = -1;  // the rank its latest wait was for (-1: none yet, or not one rank)
  // Unix time in microseconds (0: not yet), comparable across the ranks of one host.
  std::int64_t queued_us = 0, started_us = 0, ended_us = 0;
  bool stalled = false;      // a stall was reported for it (FlightRecorder::stalls)
  std::string error;         // kFailed: what failed
  std::string text() const;  // the operation, as OpDesc::text(): "allreduce(ring, 10 x float32)"
};

struct FlightChannel {
  int id = 0;
  std::string name;
  std::vector<FlightRecord> records;  // oldest first; at most the recorder's capacity
};

// A running operation that has waited longer than the stall threshold, reported once.
struct Stall {
  FlightRecord record;
  double waited_s = 0;
  std::string text() const;  // "allreduce(ring, 10 x float32) #57 on channel 0 has waited ..."
};

class FlightRecorder {
 public:
  // Keeps the last `capacity` operations of each channel (0: none; running operations are still
  // tracked for stall reports).
  FlightRecorder(std::size_t capacity, int rank);
  std::size_t capacity() const { return capacity_; }
  int rank() const { return rank_; }

  // A communicator registers; returns its channel id (0: "world", then "channel 1", ...).
  int open();
  void queued(int channel, std::uint64_t seq, const OpDesc& desc);
  void started(int channel, std::uint64_t seq);
  // The peer the running operation of `channel` now waits for: an atomic store, cheap enough
  // for every wait. The slot stays valid as long as the recorder.
  std::atomic<int>* waiting_slot(int channel);
  void finished(int channel, std::uint64_t seq, const std::string& error = {});

  std::vector<FlightChannel> snapshot() const;

  // Operations running for longer than `threshold` (0: none), each reported once, and marked
  // `stalled` in the records.
  std::vector<Stall> stalls(std::chrono::milliseconds threshold);

 private:
  struct Channel {
    std::string name;
    std::deque<FlightRecord> records;
    std::atomic<int> waiting{-1};
    // The running operation (also when the ring keeps nothing).
    bool running = false;
    bool reported = false;
    FlightRecord current;
    std::chrono::steady_clock::time_point started;
  };
  FlightRecord* find(Channel& channel, std::uint64_t seq);

  const std::size_t capacity_;
  const int rank_;
  mutable std::mutex mutex_;
  std::deque<Channel> channels_;  // a deque: slots keep their address as channels are added
};

}  // namespace braid
