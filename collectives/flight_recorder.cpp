#include "collectives/flight_recorder.h"

#include "collectives/communicator.h"
#include "common/error.h"

namespace braid {

std::int64_t flight_clock_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FlightRecord::text() const {
  OpDesc desc;
  desc.op = op;
  desc.algorithm = algorithm;
  desc.count = count;
  desc.dtype = dtype;
  desc.root = root;
  return desc.text();
}

const char* op_state_name(OpState state) {
  switch (state) {
    case OpState::kQueued:
      return "queued";
    case OpState::kStarted:
      return "started";
    case OpState::kCompleted:
      return "completed";
    case OpState::kFailed:
      return "failed";
  }
  return "unknown";
}

std::string Stall::text() const {
  const std::string peer = record.waiting_for >= 0 ? str_cat("rank ", record.waiting_for)
                                                   : std::string("a peer it cannot name");
  return str_cat(record.text(), " (sequence number ", record.seq, " on channel ", record.channel,
                 ") has waited ", static_cast<std::int64_t>(waited_s * 10) / 10.0, " s for ", peer);
}

FlightRecorder::FlightRecorder(std::size_t capacity, int rank) : capacity_(capacity), rank_(rank) {}

int FlightRecorder::open() {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::size_t id = channels_.size();
  channels_.emplace_back().name = id == 0 ? std::string("world") : str_cat("channel ", id);
  return static_cast<int>(id);
}

FlightRecord* FlightRecorder::find(Channel& channel, std::uint64_t seq) {
  // Sequence numbers are consecutive within a channel: the record is at a known distance from
  // the newest.
  if (channel.records.empty()) return nullptr;
  const std::uint64_t newest = channel.records.back().seq;
  if (seq > newest || newest - seq >= channel.records.size()) return nullptr;
  FlightRecord& record = channel.records[channel.records.size() - 1 - (newest - seq)];
  return record.seq == seq ? &record : nullptr;
}

void FlightRecorder::queued(int channel, std::uint64_t seq, const OpDesc& desc) {
  FlightRecord record;
  record.channel = channel;
  record.seq = seq;
  record.op = desc.op;
  record.algorithm = desc.algorithm;
  record.count = desc.count;
  record.dtype = desc.dtype;
  record.root = desc.root;
  record.queued_us = flight_clock_us();
  std::lock_guard<std::mutex> lock(mutex_);
  Channel& c = channels_.at(static_cast<std::size_t>(channel));
  if (capacity_ == 0) {
    c.current = std::move(record);  // only the running one is kept
    return;
  }
  if (c.records.size() == capacity_) c.records.pop_front();
  c.records.push_back(std::move(record));
}

void FlightRecorder::started(int channel, std::uint64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  Channel& c = channels_.at(static_cast<std::size_t>(channel));
  c.waiting.store(-1, std::memory_order_relaxed);
  FlightRecord* record = find(c, seq);
  if (record) c.current = *record;
  c.current.seq = seq;
  c.current.state = OpState::kStarted;
  c.current.started_us = flight_clock_us();
  if (record) *record = c.current;
  c.running = true;
  c.reported = false;
  c.started = std::chrono::steady_clock::now();
}

std::atomic<int>* FlightRecorder::waiting_slot(int channel) {
  std::lock_guard<std::mutex> lock(mutex_);
  return &channels_.at(static_cast<std::size_t>(channel)).waiting;
}

void FlightRecorder::finished(int channel, std::uint64_t seq, const std::string& error) {
  std::lock_guard<std::mutex> lock(mutex_);
  Channel& c = channels_.at(static_cast<std::size_t>(channel));
  FlightRecord* record = find(c, seq);
  if (!record) record = &c.current;  // not kept (capacity 0, or pushed out)
  record->state = error.empty() ? OpState::kCompleted : OpState::kFailed;
  record->error = error;
  record->ended_us = flight_clock_us();
  record->waiting_for = c.waiting.load(std::memory_order_relaxed);
  if (c.running && c.current.seq == seq) c.running = false;
}

std::vector<FlightChannel> FlightRecorder::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<FlightChannel> out;
  for (std::size_t i = 0; i < channels_.size(); ++i) {
    const Channel& c = channels_[i];
    FlightChannel channel{static_cast<int>(i), c.name, {c.records.begin(), c.records.end()}};
    // The running operation's latest wait is in the slot, not yet in its record.
    for (FlightRecord& record : channel.records) {
      if (c.running && record.seq == c.current.seq && record.state == OpState::kStarted) {
        record.waiting_for = c.waiting.load(std::memory_order_relaxed);
        record.stalled = c.reported;
      }
    }
    if (capacity_ == 0 && c.running) {
      channel.records.push_back(c.current);
      channel.records.back().waiting_for = c.waiting.load(std::memory_order_relaxed);
    }
    out.push_back(std::move(channel));
  }
  return out;
}

std::vector<Stall> FlightRecorder::stalls(std::chrono::milliseconds threshold) {
  std::vector<Stall> out;
  if (threshold.count() <= 0) return out;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  for (Channel& c : channels_) {
    if (!c.running || c.reported || now - c.started < threshold) continue;
    c.reported = true;
    Stall stall;
    stall.record = c.current;
    stall.record.waiting_for = c.waiting.load(std::memory_order_relaxed);
    stall.record.stalled = true;
    stall.waited_s = std::chrono::duration<double>(now - c.started).count();
    if (FlightRecord* record = find(c, c.current.seq)) record->stalled = true;
    out.push_back(std::move(stall));
  }
  return out;
}

}  // namespace braid
