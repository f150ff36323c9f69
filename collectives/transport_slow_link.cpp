#include "collectives/transport_slow_link.h"

#include <algorithm>

namespace braid {

namespace {

// Completes after the inner request and, on a slow link, link_delay + (slowdown - 1) x the time
// its bytes take at the fastest rate seen on this transport later still. The fastest rate
// stands for a link's own speed: a request's duration also counts the wait for its peer, and
// stretching that would stretch every later wait of a pipelined exchange too, without bound.
class SlowRequest : public Request {
 public:
  SlowRequest(RequestPtr inner, const SlowLinks& links, bool slow,
              std::shared_ptr<std::atomic<double>> rate)
      : Request(inner->peer(), inner->tag(), inner->bytes(), inner->is_recv()),
        inner_(std::move(inner)),
        delay_(slow ? links.delay : std::chrono::microseconds(0)),
        extra_(slow ? links.slowdown - 1 : 0.0),
        rate_(std::move(rate)) {}

  bool test() override {
    if (!inner_done_) {
      if (!inner_->test()) return false;
      inner_done_ = true;
      const double took = std::chrono::duration<double>(Clock::now() - posted_).count();
      const auto bytes = static_cast<double>(this->bytes());
      double rate = rate_->load(std::memory_order_relaxed);
      if (took > 0 && bytes / took > rate) {
        rate = bytes / took;
        rate_->store(rate, std::memory_order_relaxed);
      }
      const double stretch = rate > 0 ? extra_ * bytes / rate : 0.0;
      ready_at_ =
          Clock::now() + delay_ +
          std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(stretch));
    }
    return Clock::now() >= ready_at_;
  }

 private:
  RequestPtr inner_;
  std::chrono::microseconds delay_;
  double extra_;
  std::shared_ptr<std::atomic<double>> rate_;
  Clock::time_point posted_ = Clock::now(), ready_at_;
  bool inner_done_ = false;
};

}  // namespace

bool SlowLinks::slow(int a, int b) const {
  return std::any_of(pairs.begin(), pairs.end(), [&](const std::pair<int, int>& p) {
    return (p.first == a && p.second == b) || (p.first == b && p.second == a);
  });
}

SlowLinkTransport::SlowLinkTransport(std::shared_ptr<Transport> inner, SlowLinks links)
    : TransportWrapper(std::move(inner)),
      links_(std::move(links)),
      rate_(std::make_shared<std::atomic<double>>(0.0)) {}

// Every request is timed (the fast ones teach the rate); only a slow link's is held back.
RequestPtr SlowLinkTransport::slowed(RequestPtr inner) {
  const bool slow = links_.slow(rank(), inner->peer());
  return std::make_unique<SlowRequest>(std::move(inner), links_, slow, rate_);
}

RequestPtr SlowLinkTransport::isend(const void* data, std::size_t bytes, int peer, int tag) {
  return slowed(inner_->isend(data, bytes, peer, tag));
}

RequestPtr SlowLinkTransport::irecv(void* data, std::size_t bytes, int peer, int tag) {
  return slowed(inner_->irecv(data, bytes, peer, tag));
}

}  // namespace braid
