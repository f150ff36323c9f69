// ForwardingTransport: a Transport that passes every send and receive to another one; tests
// derive from it to observe or corrupt one kind of call (record tags, rewrite a count) and keep
// the rest real. It is a plain transport otherwise: no native collectives, no shared memory,
// byte counters of its own. Subclasses rewrap a duplicate in wrap() (TransportWrapper).
#pragma once

#include <memory>

#include "collectives/transport_wrapper.h"

namespace braid::testing {

class ForwardingTransport : public TransportWrapper {
 public:
  explicit ForwardingTransport(std::shared_ptr<Transport> inner)
      : TransportWrapper(std::move(inner)) {
    init_counters(inner_->size());
  }
  const char* name() const override { return "forwarding"; }
  NativeCollectives* native() override { return nullptr; }
  bool moves_device_memory() const override { return false; }
  SharedMemory* shared_memory() override { return nullptr; }
  std::uint64_t bytes_sent() const override { return Transport::bytes_sent(); }
  std::uint64_t bytes_recv() const override { return Transport::bytes_recv(); }
  std::uint64_t bytes_sent_to(int peer) const override { return Transport::bytes_sent_to(peer); }
  std::uint64_t bytes_recv_from(int peer) const override {
    return Transport::bytes_recv_from(peer);
  }
};

}  // namespace braid::testing
