#include "collectives/transport.h"

#include <thread>

#include "common/error.h"

namespace braid {

bool poll_until(const std::function<bool()>& done, Clock::time_point deadline,
                const std::atomic<bool>* stop) {
  for (std::uint64_t spins = 0;; ++spins) {
    if (done()) return true;
    if (spins < 64) continue;
    if ((spins & 63) == 0) {
      if (Clock::now() >= deadline) return false;
      if (stop && stop->load(std::memory_order_relaxed)) return false;
    }
    if (spins < 4096) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

bool Request::wait_until(Clock::time_point deadline, const std::atomic<bool>* stop) {
  return poll_until([this] { return test(); }, deadline, stop);
}

void Transport::init_counters(int size) {
  counter_size_ = size;
  sent_to_.reset(new std::atomic<std::uint64_t>[size]);
  recv_from_.reset(new std::atomic<std::uint64_t>[size]);
  for (int i = 0; i < size; ++i) {
    sent_to_[i] = 0;
    recv_from_[i] = 0;
  }
}

std::uint64_t Transport::bytes_sent_to(int peer) const {
  BRAID_CHECK(peer >= 0 && peer < counter_size_, "peer ", peer);
  return sent_to_[peer].load(std::memory_order_relaxed);
}

std::uint64_t Transport::bytes_recv_from(int peer) const {
  BRAID_CHECK(peer >= 0 && peer < counter_size_, "peer ", peer);
  return recv_from_[peer].load(std::memory_order_relaxed);
}

void Transport::count(const Request& request) {
  if (request.is_recv()) {
    bytes_recv_.fetch_add(request.bytes(), std::memory_order_relaxed);
    recv_from_[request.peer()].fetch_add(request.bytes(), std::memory_order_relaxed);
  } else {
    bytes_sent_.fetch_add(request.bytes(), std::memory_order_relaxed);
    sent_to_[request.peer()].fetch_add(request.bytes(), std::memory_order_relaxed);
  }
}

}  // namespace braid
