// FaultyTransport: wraps a transport and fails its K-th send or receive (1-based) with a
// CommError. A testing hook for the error paths: the fault must surface from Work::wait and end
// the process with a non-zero exit, never a hang.
#pragma once

#include "collectives/transport.h"

namespace braid {

class FaultyTransport : public Transport {
 public:
  FaultyTransport(std::shared_ptr<Transport> inner, std::int64_t fail_at);
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  const char* name() const override { return inner_->name(); }
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override;
  RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) override;
  std::shared_ptr<Transport> split(int color, int key) override {
    return inner_->split(color, key);
  }
  // The duplicate fails too (counting its own operations), so a Communicator, which works on a
  // dup() of the transport it is given, still sees the injected fault.
  std::shared_ptr<Transport> dup(Clock::time_point deadline) override {
    return std::make_shared<FaultyTransport>(inner_->dup(deadline), fail_at_);
  }
  int max_tag() const override { return inner_->max_tag(); }
  NativeCollectives* native() override { return inner_->native(); }
  std::uint64_t bytes_sent() const override { return inner_->bytes_sent(); }
  std::uint64_t bytes_recv() const override { return inner_->bytes_recv(); }
  std::uint64_t bytes_sent_to(int peer) const override { return inner_->bytes_sent_to(peer); }
  std::uint64_t bytes_recv_from(int peer) const override { return inner_->bytes_recv_from(peer); }

 private:
  void tick();
  std::shared_ptr<Transport> inner_;
  std::int64_t fail_at_, calls_ = 0;
};

}  // namespace braid
