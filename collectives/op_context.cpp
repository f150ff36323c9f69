#include "collectives/op_context.h"

#include "common/error.h"

namespace braid {

void OpContext::wait(Request& request) {
  waiting_for(request.peer());
  if (request.wait_until(deadline_, aborted_)) return;
  fail_wait(str_cat(request.is_recv() ? "receive " : "send ", request.bytes(), " bytes ",
                    request.is_recv() ? "from" : "to", " rank ", request.peer()));
}

RequestPtr OpContext::recv_ahead(void* data, std::size_t bytes, int peer, std::uint64_t ahead) {
  BRAID_CHECK(ahead_, op_, ": recv_ahead outside a communicator");
  return transport_.irecv(data, bytes, peer, ahead_->reserve(seq_, ahead));
}

void OpContext::fail_wait(const std::string& waiting_for) const {
  if (aborted_ && aborted_->load()) {
    throw CommError(str_cat("rank ", rank(), ": ", op_, " (sequence number ", seq_,
                            ") was interrupted waiting to ", waiting_for));
  }
  auto waited =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count();
  throw TimeoutError(str_cat("rank ", rank(), ": ", op_, " (sequence number ", seq_,
                             ") timed out after ", waited, " ms waiting to ", waiting_for));
}

void OpContext::wait_all(std::vector<RequestPtr>& requests) {
  for (auto& request : requests) {
    if (request) wait(*request);
  }
  requests.clear();
}

void OpContext::sendrecv(Buffer out, int to, Buffer in, int from) {
  auto r = recv(in, from);
  auto s = send(out, to);
  wait(*r);
  wait(*s);
}

}  // namespace braid
