// Work: the handle of an operation running on another thread (a collective on the
// communication thread). Contract:
//  - wait(timeout) blocks until the operation finishes and rethrows its error; with a timeout
//    it throws TimeoutError if the operation is still running when the timeout expires (the
//    operation keeps running; the communicator enforces its own deadline separately).
//  - is_completed() never blocks; it is true once the operation finished, with or without error.
//  - A default-constructed Work is already completed (nothing to wait for).
// Any thread may wait on a Work; copies share the same state.
#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <string>

namespace braid {

class Work {
 public:
  Work() = default;

  // Creates a pending Work whose description ("allreduce seq 12") appears in timeout messages.
  static Work pending(std::string description);

  void wait(std::chrono::milliseconds timeout = std::chrono::milliseconds::zero()) const;
  bool is_completed() const noexcept;

  // Called once by the thread that ran the operation.
  void mark_completed(std::exception_ptr error = nullptr) const;

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    std::exception_ptr error;
    std::string description;
    std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
  };
  std::shared_ptr<State> state_;
};

}  // namespace braid
