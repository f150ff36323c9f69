// ThreadTransport: N threads of one process act as N ranks. Sends copy into the receiver's
// mailbox and complete at once; receives match in MPI order and block on a condition variable.
// Used by the unit tests and to simulate more ranks than a machine has processes.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "collectives/transport.h"

namespace braid {

class ThreadWorld;

class ThreadTransport : public Transport {
 public:
  // One transport per rank, all sharing a new world.
  static std::vector<std::shared_ptr<Transport>> create_world(int size);

  ThreadTransport(std::shared_ptr<ThreadWorld> world, int rank);
  int rank() const override { return rank_; }
  int size() const override;
  const char* name() const override { return "thread"; }
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override;
  RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) override;
  std::shared_ptr<Transport> split(int color, int key) override;
  int max_tag() const override;

 private:
  std::shared_ptr<ThreadWorld> world_;
  int rank_;
  std::atomic<int> splits_{0};
};

}  // namespace braid
