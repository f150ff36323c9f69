// FaultyTransport: wraps a transport and fails its K-th send or receive (1-based) with a
// CommError. A testing hook for the error paths: the fault must surface from Work::wait and end
// the process with a non-zero exit, never a hang.
#pragma once

#include "collectives/transport_wrapper.h"

namespace braid {

class FaultyTransport : public TransportWrapper {
 public:
  FaultyTransport(std::shared_ptr<Transport> inner, std::int64_t fail_at);
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override;
  RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) override;
  // Every byte goes through the counted sends and receives, none through shared memory.
  SharedMemory* shared_memory() override { return nullptr; }

 protected:
  // The duplicate fails too (counting its own operations), so a Communicator, which works on a
  // dup() of the transport it is given, still sees the injected fault.
  std::shared_ptr<Transport> wrap(std::shared_ptr<Transport> duplicate) override {
    return std::make_shared<FaultyTransport>(std::move(duplicate), fail_at_);
  }

 private:
  void tick();
  std::int64_t fail_at_, calls_ = 0;
};

}  // namespace braid
