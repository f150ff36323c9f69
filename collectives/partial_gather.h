// Partial gather for gradient coding: the root completes with the first k blocks to arrive (its
// own counts as one) and says which ranks they came from; the other ranks just send.
//
// How it works: the root posts one receive per peer into staging memory it does not share with
// the caller, polls them until k-1 completed, copies those blocks into `output` and hands the
// receives still posted to a LateReceives list, together with their staging memory. Each
// operation has its own tag, so a late block can only ever match its own operation's receive:
// it lands in that staging memory and is discarded at a later operation (reap()). The root
// receives at most (P-1) * S; every other rank sends S once.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "collectives/op_context.h"

namespace braid {

// Receives of past partial gathers that were still in flight when their operation completed.
// Owned by one Communicator, used by its communication thread only. Destroying it cancels
// what is still posted (the transport's request destructor cancels) before freeing the memory.
//
// A rank that hangs without crashing never sends, so one receive (with a block of memory) per
// operation would pile up for it: past `max_per_peer` still posted for one rank, add() throws a
// CommError naming it.
class LateReceives {
 public:
  struct Entry {
    std::unique_ptr<std::vector<char>> memory;  // declared first: freed after the request
    RequestPtr request;
  };
  static constexpr std::size_t kDefaultMaxPerPeer = 32;
  explicit LateReceives(std::size_t max_per_peer = kDefaultMaxPerPeer)
      : max_per_peer_(max_per_peer) {}
  void add(Entry entry);
  // Discards receives that completed (successfully or not: a late block is not used), and
  // cancels those posted with `tag`, the tag the next operation will use: tags are reused after
  // a wrap, and a stale receive must not take a message meant for a new operation.
  void reap(int tag);
  std::size_t size() const { return entries_.size(); }

 private:
  std::size_t max_per_peer_;
  std::vector<Entry> entries_;
};

// `output` (root only) receives k blocks of input.count elements, block j from rank
// ranks[j] with ranks ascending; returns those ranks on the root and an empty vector elsewhere.
// 1 <= k <= P. TimeoutError if fewer than k blocks arrived by the deadline.
std::vector<int> gather_first_k(OpContext& ctx, Buffer input, Buffer output, int k, int root,
                                LateReceives& late);

}  // namespace braid
