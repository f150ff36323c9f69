// The collectives besides allreduce, as blocking functions that run on the communication
// thread inside an OpContext (Communicator wraps each in an asynchronous Work). Layout rules
// match MPI: a gathered buffer holds rank 0's block, then rank 1's, and so on. Sizes a rank
// receives are validated by the transport, so ranks that disagree on counts get a CommError.
// P = ranks, S = bytes a rank contributes (or, for broadcast and reduce-scatter, the whole
// buffer).
#pragma once

#include <cstdint>
#include <vector>

#include "collectives/allreduce.h"

namespace braid {

// Ring reduce-scatter: `output` (split_count(n, P, rank) elements) receives the reduction of
// chunk `rank` of every rank's `input` (n elements, unchanged). In step k rank r sends chunk
// (r-k-1) of its running sum to r+1 and adds chunk (r-k-2) from r-1. P-1 steps; sends
// (P-1)/P * S, reduces (P-1)/P * S.
void reduce_scatter(OpContext& ctx, Buffer input, Buffer output, ReduceOp op, Scratch& scratch);

// Ring allgatherv: `output` holds counts[0] elements from rank 0, then counts[1] from rank 1, ...;
// counts[rank] == input.count. In step k rank r forwards block (r-k) and receives block (r-k-1).
// P-1 steps; sends and receives S_total - S_own bytes.
void allgatherv(OpContext& ctx, Buffer input, Buffer output,
                const std::vector<std::int64_t>& counts);

// Variable-size allgather of raw bytes: first an allgatherv of every rank's byte count (int64),
// validated on receipt (a count below 0 or above kMaxPayloadBytes is a CommError naming the rank;
// nothing is allocated from an unchecked count; the sum is capped at kMaxGatheredBytes), then a
// ring allgatherv of the bytes. Returns every rank's bytes, indexed by rank. Cost: allgatherv of
// 8 bytes, then of S_total bytes.
constexpr std::int64_t kMaxPayloadBytes = std::int64_t{1} << 30;
constexpr std::int64_t kMaxGatheredBytes = std::int64_t{1} << 34;
std::vector<std::vector<std::uint8_t>> allgather_bytes(OpContext& ctx,
                                                       const std::vector<std::uint8_t>& mine);

// Variable-size alltoall of raw bytes: to_each[i] goes to rank i; returns what each rank sent
// this one, indexed by rank. Byte counts travel first (an alltoallv of one int64 each) and are
// validated as allgather_bytes validates them. Cost: sends the bytes for other ranks once.
std::vector<std::vector<std::uint8_t>> alltoall_bytes(
    OpContext& ctx, const std::vector<std::vector<std::uint8_t>>& to_each);
// Binomial-tree broadcast from `root`: ceil(log2 P) rounds; the root sends S up to log2 P times,
// every other rank receives S once.
void broadcast(OpContext& ctx, Buffer buffer, int root);

// Direct gather to `root`: `output` (P * input.count elements, root only) in rank order. The root
// receives (P-1) * S with all receives posted at once.
void gather(OpContext& ctx, Buffer input, Buffer output, int root);

// Pairwise alltoallv: block i of `input` (send_counts[i] elements) goes to rank i, block j of
// `output` (recv_counts[j]) comes from rank j. All 2(P-1) messages are in flight at once.
void alltoallv(OpContext& ctx, Buffer input, const std::vector<std::int64_t>& send_counts,
               Buffer output, const std::vector<std::int64_t>& recv_counts);

// Dissemination barrier: ceil(log2 P) rounds of one-byte messages to r + 2^k.
void barrier(OpContext& ctx);

}  // namespace braid
