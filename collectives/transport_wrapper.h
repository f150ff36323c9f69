// TransportWrapper: a Transport over another one that passes every call through; the injection
// hooks (FaultyTransport, SlowLinkTransport) derive from it and change sends and receives only.
// A Communicator works on its own dup() of the transport it is given, so a wrapper rewraps the
// duplicate (wrap()) to stay in the path.
#pragma once

#include <memory>

#include "collectives/transport.h"

namespace braid {

class TransportWrapper : public Transport {
 public:
  explicit TransportWrapper(std::shared_ptr<Transport> inner) : inner_(std::move(inner)) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  const char* name() const override { return inner_->name(); }
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override {
    return inner_->isend(data, bytes, peer, tag);
  }
  RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) override {
    return inner_->irecv(data, bytes, peer, tag);
  }
  // Ranks of a split group are not this group's: the wrapper stays out of it.
  std::shared_ptr<Transport> split(int color, int key) override {
    return inner_->split(color, key);
  }
  std::shared_ptr<Transport> dup(Clock::time_point deadline) override {
    return wrap(inner_->dup(deadline));
  }
  int max_tag() const override { return inner_->max_tag(); }
  NativeCollectives* native() override { return inner_->native(); }
  bool moves_device_memory() const override { return inner_->moves_device_memory(); }
  SharedMemory* shared_memory() override { return inner_->shared_memory(); }
  void mark_failed() override { inner_->mark_failed(); }
  std::uint64_t bytes_sent() const override { return inner_->bytes_sent(); }
  std::uint64_t bytes_recv() const override { return inner_->bytes_recv(); }
  std::uint64_t bytes_sent_to(int peer) const override { return inner_->bytes_sent_to(peer); }
  std::uint64_t bytes_recv_from(int peer) const override { return inner_->bytes_recv_from(peer); }

 protected:
  // The same kind of wrapper, with this one's settings, around `duplicate`.
  virtual std::shared_ptr<Transport> wrap(std::shared_ptr<Transport> duplicate) = 0;
  std::shared_ptr<Transport> inner_;
};

}  // namespace braid
