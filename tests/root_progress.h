// RootProgress: how many steps rank 0 (the root) of a thread-rank test finished, so that a late
// rank can wait for it: ordering by construction, no sleeps (coded strategies' tests).
#pragma once

#include <condition_variable>
#include <mutex>

namespace braid::testing {

struct RootProgress {
  std::mutex mutex;
  std::condition_variable changed;
  int done = 0;
  void finished(int step) {
    std::lock_guard<std::mutex> lock(mutex);
    done = step + 1;
    changed.notify_all();
  }
  void wait_for(int steps) {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return done >= steps; });
  }
};

}  // namespace braid::testing
