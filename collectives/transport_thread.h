// ThreadTransport: N threads of one process act as N ranks. Sends copy into the receiver's
// mailbox and complete at once; receives match in MPI order and block on a condition variable.
// Used by the unit tests and to simulate more ranks than a machine has processes.
//
// Shared memory: threads share all memory, so shared_memory() is always offered (and, as for
// MPI, never communicates: the node layout travels with split()). By default all
// ranks are one node; create_world(size, ranks_per_node) makes each ranks_per_node consecutive
// ranks a node (the last one may be smaller), for testing hierarchical algorithms. Regions stay
// allocated until the world is gone, so a rank that gave up on a stalled peer never frees memory
// that peer may still read. Setting up shared memory exchanges a few small messages among the
// node's ranks, which the byte counters see once (as they see split()'s).
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
  static std::vector<std::shared_ptr<Transport>> create_world(int size, int ranks_per_node = 0);

  // `node_keys`: every rank's node key (ranks with equal keys share a node); split() passes
  // them on, so the layout is known without communicating.
  ThreadTransport(std::shared_ptr<ThreadWorld> world, int rank, std::vector<int> node_keys);
  ~ThreadTransport() override;
  int rank() const override { return rank_; }
  int size() const override;
  const char* name() const override { return "thread"; }
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override;
  RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) override;
  std::shared_ptr<Transport> split(int color, int key) override;
  int max_tag() const override;
  SharedMemory* shared_memory() override;

 private:
  std::shared_ptr<ThreadWorld> world_;
  int rank_;
  std::vector<int> node_keys_;
  std::unique_ptr<SharedMemory> shared_memory_;
  std::atomic<int> splits_{0};
};

}  // namespace braid
