#include "collectives/transport.h"

#include <thread>

#include "common/error.h"

namespace braid {

bool Request::wait_until(Clock::time_point deadline) {
  // Spin first: on a fast path (shared memory, small message) completion is microseconds away.
  // Then yield, then sleep, so a long wait for a peer that is still computing stays cheap.
  for (int spins = 0;; ++spins) {
    if (test()) return true;
    if (spins < 64) continue;
    if ((spins & 63) == 0 && Clock::now() >= deadline) return false;
    if (spins < 4096) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
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
