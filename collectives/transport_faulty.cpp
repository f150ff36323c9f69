#include "collectives/transport_faulty.h"

#include "common/error.h"

namespace braid {

FaultyTransport::FaultyTransport(std::shared_ptr<Transport> inner, std::int64_t fail_at)
    : TransportWrapper(std::move(inner)), fail_at_(fail_at) {}

void FaultyTransport::tick() {
  if (++calls_ == fail_at_) {
    throw CommError(
        str_cat("injected transport fault at operation ", fail_at_, " on rank ", rank()));
  }
}

RequestPtr FaultyTransport::isend(const void* data, std::size_t bytes, int peer, int tag) {
  tick();
  return inner_->isend(data, bytes, peer, tag);
}

RequestPtr FaultyTransport::irecv(void* data, std::size_t bytes, int peer, int tag) {
  tick();
  return inner_->irecv(data, bytes, peer, tag);
}

}  // namespace braid
