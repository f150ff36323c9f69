#include "collectives/collectives.h"

#include "collectives/blocks.h"
#include "common/error.h"

namespace braid {

void alltoallv(OpContext& ctx, Buffer input, const std::vector<std::int64_t>& send_counts,
               Buffer output, const std::vector<std::int64_t>& recv_counts) {
  const int P = ctx.size(), r = ctx.rank();
  BRAID_CHECK(
      static_cast<int>(send_counts.size()) == P && static_cast<int>(recv_counts.size()) == P,
      "alltoallv needs ", P, " send and receive counts");
  auto send_offsets = offsets_of(send_counts), recv_offsets = offsets_of(recv_counts);
  BRAID_CHECK(input.count == send_offsets[P] && output.count == recv_offsets[P],
              "alltoallv buffers hold ", input.count, " and ", output.count,
              " elements, counts add up to ", send_offsets[P], " and ", recv_offsets[P]);
  BRAID_CHECK(send_counts[r] == recv_counts[r], "alltoallv: rank ", r, " sends itself ",
              send_counts[r], " elements but expects ", recv_counts[r]);
  std::vector<RequestPtr> requests;
  for (int k = 1; k < P; ++k) {
    int from = (r + P - k) % P;
    requests.push_back(ctx.recv(output.slice(recv_offsets[from], recv_counts[from]), from));
  }
  for (int k = 1; k < P; ++k) {
    int to = (r + k) % P;
    requests.push_back(ctx.send(input.slice(send_offsets[to], send_counts[to]), to));
  }
  copy_block(output.slice(recv_offsets[r], recv_counts[r]),
             input.slice(send_offsets[r], send_counts[r]));
  ctx.wait_all(requests);
}

}  // namespace braid
