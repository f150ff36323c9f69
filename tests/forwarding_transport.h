// ForwardingTransport: a Transport that passes every call to another one; tests derive from it
// to observe or corrupt one kind of call (record tags, rewrite a count) and keep the rest real.
// A Communicator works on its own dup(), so subclasses rewrap the duplicate (wrap()).
#pragma once

#include <memory>

#include "collectives/transport.h"

namespace braid::testing {

class ForwardingTransport : public Transport {
 public:
  explicit ForwardingTransport(std::shared_ptr<Transport> inner) : inner_(std::move(inner)) {
    init_counters(inner_->size());
  }
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  int max_tag() const override { return inner_->max_tag(); }
  const char* name() const override { return "forwarding"; }
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override {
    return inner_->isend(data, bytes, peer, tag);
  }
  RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) override {
    return inner_->irecv(data, bytes, peer, tag);
  }
  std::shared_ptr<Transport> split(int color, int key) override {
    return inner_->split(color, key);
  }
  std::shared_ptr<Transport> dup(Clock::time_point deadline) override {
    return wrap(inner_->dup(deadline));
  }

 protected:
  // The same kind of wrapper, sharing this one's state, around `duplicate`.
  virtual std::shared_ptr<Transport> wrap(std::shared_ptr<Transport> duplicate) = 0;
  std::shared_ptr<Transport> inner_;
};

}  // namespace braid::testing
