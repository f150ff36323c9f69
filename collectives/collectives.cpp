#include "collectives/collectives.h"

#include <cstring>
#include <numeric>

#include "collectives/reduce.h"
#include "common/error.h"

namespace braid {

namespace {

std::vector<std::int64_t> offsets_of(const std::vector<std::int64_t>& counts) {
  std::vector<std::int64_t> offsets(counts.size() + 1, 0);
  std::partial_sum(counts.begin(), counts.end(), offsets.begin() + 1);
  return offsets;
}

void copy(Buffer dst, Buffer src) {
  if (dst.data != src.data && src.count) std::memcpy(dst.data, src.data, src.bytes());
}

}  // namespace

void reduce_scatter(OpContext& ctx, Buffer input, Buffer output, ReduceOp op, Scratch& scratch) {
  const int P = ctx.size(), r = ctx.rank();
  const std::int64_t n = input.count;
  BRAID_CHECK(output.count == split_count(n, P, r) && output.dtype == input.dtype,
              "reduce_scatter output has ", output.count, " elements, chunk ", r, " of ", n,
              " has ", split_count(n, P, r));
  const std::size_t elem = dtype_size(input.dtype);
  char* memory = scratch.get((n + split_count(n, P, 0)) * elem);
  Buffer work{memory, n, input.dtype};
  copy(work, input);
  char* incoming = memory + n * elem;
  auto chunk = [&](int c) {
    c = ((c % P) + P) % P;
    return work.slice(split_offset(n, P, c), split_count(n, P, c));
  };
  for (int k = 0; k < P - 1; ++k) {
    Buffer mine = chunk(r - k - 2);
    ctx.sendrecv(chunk(r - k - 1), (r + 1) % P, Buffer{incoming, mine.count, input.dtype},
                 (r + P - 1) % P);
    reduce_into(mine, incoming, op);
  }
  copy(output, chunk(r));
}

void allgatherv(OpContext& ctx, Buffer input, Buffer output,
                const std::vector<std::int64_t>& counts) {
  const int P = ctx.size(), r = ctx.rank();
  BRAID_CHECK(static_cast<int>(counts.size()) == P, "allgatherv needs ", P, " counts, got ",
              counts.size());
  BRAID_CHECK(counts[r] == input.count, "allgatherv: counts[", r, "] = ", counts[r],
              " but this rank contributes ", input.count);
  auto offsets = offsets_of(counts);
  BRAID_CHECK(output.count == offsets[P], "allgatherv output has ", output.count,
              " elements, counts add up to ", offsets[P]);
  auto block = [&](int b) {
    b = ((b % P) + P) % P;
    return output.slice(offsets[b], counts[b]);
  };
  copy(block(r), input);
  for (int k = 0; k < P - 1; ++k) {
    ctx.sendrecv(block(r - k), (r + 1) % P, block(r - k - 1), (r + P - 1) % P);
  }
}

void broadcast(OpContext& ctx, Buffer buffer, int root) {
  const int P = ctx.size(), r = ctx.rank();
  BRAID_CHECK(root >= 0 && root < P, "broadcast root ", root, " of ", P);
  const int me = (r - root + P) % P;
  int mask = 1;
  while (mask < P) {
    if (me & mask) {
      auto request = ctx.recv(buffer, (me - mask + root) % P);
      ctx.wait(*request);
      break;
    }
    mask <<= 1;
  }
  std::vector<RequestPtr> sends;
  for (mask >>= 1; mask > 0; mask >>= 1) {
    if (me + mask < P) sends.push_back(ctx.send(buffer, (me + mask + root) % P));
  }
  ctx.wait_all(sends);
}

void gather(OpContext& ctx, Buffer input, Buffer output, int root) {
  const int P = ctx.size(), r = ctx.rank();
  BRAID_CHECK(root >= 0 && root < P, "gather root ", root, " of ", P);
  if (r != root) {
    auto request = ctx.send(input, root);
    ctx.wait(*request);
    return;
  }
  BRAID_CHECK(output.count == P * input.count, "gather output has ", output.count,
              " elements, needs ", P * input.count);
  std::vector<RequestPtr> recvs;
  for (int peer = 0; peer < P; ++peer) {
    Buffer block = output.slice(peer * input.count, input.count);
    if (peer == r) {
      copy(block, input);
    } else {
      recvs.push_back(ctx.recv(block, peer));
    }
  }
  ctx.wait_all(recvs);
}

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
  copy(output.slice(recv_offsets[r], recv_counts[r]), input.slice(send_offsets[r], send_counts[r]));
  ctx.wait_all(requests);
}

void barrier(OpContext& ctx) {
  const int P = ctx.size(), r = ctx.rank();
  char token = 0;
  for (int distance = 1; distance < P; distance *= 2) {
    auto in = ctx.recv(&token, 0, (r + P - distance) % P);
    auto out = ctx.send(&token, 0, (r + distance) % P);
    ctx.wait(*in);
    ctx.wait(*out);
  }
}

}  // namespace braid
