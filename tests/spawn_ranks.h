// spawn_ranks(n, fn): runs fn(Communicator&) on n threads over the in-process transport, one
// rank each, and rethrows the first failure after all threads have finished.
#pragma once

#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "collectives/communicator.h"
#include "collectives/transport_thread.h"

namespace braid::testing {

inline void spawn_ranks(int n, const std::function<void(Communicator&)>& fn,
                        const CommOptions& options = {},
                        std::vector<std::shared_ptr<Transport>> transports = {}) {
  if (transports.empty()) transports = ThreadTransport::create_world(n);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        Communicator comm(transports[r], options);
        fn(comm);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (auto& error : errors) {
    if (error) std::rethrow_exception(error);
  }
}

}  // namespace braid::testing
