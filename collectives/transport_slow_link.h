// SlowLinkTransport (inject.slow_links): makes the links between chosen pairs of ranks slow, so
// slow-link detection can be tested on one machine. A send to or a receive from the other rank
// of a slow pair completes `delay` plus (slowdown - 1) x the time its bytes take at the fastest
// rate this transport has seen after it really did (both ends delay their own side): the
// link's transfer time is stretched `slowdown` times, not the waits for a peer. Shared memory and
// native collectives bypass it: use it with a rank per node (runtime.ranks_per_node: 1) and an
// algorithm over sends and receives.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "collectives/transport_wrapper.h"

namespace braid {

struct SlowLinks {
  std::vector<std::pair<int, int>> pairs;  // ranks of the wrapped group
  std::chrono::microseconds delay{0};      // added to each message's completion
  double slowdown = 1;                     // its real duration is stretched by this factor
  bool slow(int a, int b) const;
};

class SlowLinkTransport : public TransportWrapper {
 public:
  SlowLinkTransport(std::shared_ptr<Transport> inner, SlowLinks links);
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override;
  RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) override;

 protected:
  std::shared_ptr<Transport> wrap(std::shared_ptr<Transport> duplicate) override {
    auto copy = std::make_shared<SlowLinkTransport>(std::move(duplicate), links_);
    copy->rate_ = rate_;
    return copy;
  }

 private:
  RequestPtr slowed(RequestPtr inner);
  SlowLinks links_;
  std::shared_ptr<std::atomic<double>> rate_;  // bytes/s: the fastest request seen
};

}  // namespace braid
