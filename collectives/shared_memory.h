// SharedMemory: the ranks of a transport's group that share one node (a machine, or an emulated
// node of `runtime.ranks_per_node` consecutive ranks), where they sit in the group, and memory
// every rank of the node reads and writes directly (MPI-3 shared windows, or plain memory for
// threads as ranks). A transport offers it through Transport::shared_memory().
//
// Regions: allocate() is collective over the node and gives every local rank `bytes` of its own
// that all local ranks can address; region ids count allocations, so they agree across the node.
// A buffer that lies in a region is "registered": an algorithm can read peers' copies in place
// when every local rank passes the same region and offset (checked per operation).
//
// Synchronisation: barrier() is a node barrier on sequence-numbered flags (one cache line per
// local rank, release store / acquire load), so every write before it is visible to every local
// rank after it. It waits against a deadline and never spins forever on a stalled peer. All
// local ranks must call allocate/free/staging/barrier in the same order; only the communication
// thread of the owning communicator calls any of it.
//
// Counters: bytes_read() counts bytes read from other local ranks' memory; network counters of
// the transport never include them.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "collectives/transport.h"

namespace braid {

// Where a rank sits: the group's ranks grouped by node, nodes ordered by their lowest rank.
struct NodeLayout {
  int node = 0, nodes = 1;
  int local_rank = 0, local_size = 1;
  bool uniform = true;           // every node has local_size ranks
  std::vector<int> node_ranks;   // group ranks of this node, by local rank
  std::vector<int> index_ranks;  // group ranks with this local rank, one per node, by node

  // From every group rank's node key (ranks with equal keys share a node).
  static NodeLayout from_keys(const std::vector<int>& keys, int rank);
};

struct SharedRegion {
  std::uint64_t id = 0;     // 1, 2, ...: the n-th allocation on this node
  std::size_t bytes = 0;    // per local rank
  std::vector<char*> base;  // each local rank's part, by local rank
};

class SharedMemory {
 public:
  virtual ~SharedMemory() = default;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;

  const NodeLayout& layout() const { return layout_; }

  // Collective over the node, bounded by a deadline: the first call meets the other local ranks
  // and then allocates the flags (later calls return true at once). false when the deadline
  // passes or `*stop` is set before every local rank arrived. Algorithms call it first, so a peer
  // that never arrives ends in their TimeoutError, never in a blocking allocation.
  bool prepare(Clock::time_point deadline, const std::atomic<bool>* stop);

  // Collective over the node and blocking (like Transport::split): `bytes` for each local rank;
  // returns this rank's part (64-byte aligned), valid until free(it) (also collective) or
  // destruction.
  char* allocate(std::size_t bytes);
  void free(char* mine);
  // The region holding this rank's [data, data + bytes), with *offset set, or nullptr.
  const SharedRegion* find(const void* data, std::size_t bytes, std::size_t* offset) const;
  // A region of at least `bytes` per rank for copying unregistered buffers in (collective; it
  // grows, so all local ranks must ask for the same size).
  const SharedRegion& staging(std::size_t bytes);

  // kWords words this rank shows the node until its next publish(); read them after a barrier.
  // They come from a peer: check them before use.
  static constexpr int kWords = 4;
  void publish(const std::array<std::uint64_t, kWords>& words);
  std::uint64_t published(int local_rank, int word) const;
  // Node barrier; false when the deadline passes or `*stop` is set first, with *late set to the
  // first local rank that had not arrived.
  // `waiting` (when given) hears each local rank this rank starts to wait for (stall reports).
  bool barrier(Clock::time_point deadline, const std::atomic<bool>* stop, int* late,
               const std::function<void(int)>& waiting = {});
  // Progress within one phase (between two barriers), so a peer can consume part of a result
  // while the rest is still being computed: advance(done) shows the node that this rank has
  // finished `done` units (non-decreasing within the phase; writes before it are visible to a
  // rank that then reads progress(me) >= done); progress(i) is local rank i's count in this
  // phase (0 before its first advance). Counts start again from 0 after every barrier.
  void advance(std::uint64_t done);
  std::uint64_t progress(int local_rank);

  // Teardown: whether every local rank frees the memory (true) or every rank leaves it to the end
  // of the process (false), decided once for the whole node. Each rank calls it once, from its
  // destructor; it waits for the others until `deadline`. The decision is a single shared word
  // set by compare-and-swap: "free" only by a rank that saw every local rank arrive, "leak" by
  // a rank whose deadline passed first; a rank arriving after either reads it. So a late rank
  // (one still writing a checkpoint) and an early one always take the same decision, and an
  // MPI_Win_free, which synchronises the node, is entered by all local ranks or by none.
  bool agree_to_release(Clock::time_point deadline);
  // How long a destructor waits for the node's other ranks (agree_to_release); communicators set
  // it to their operation timeout, since a peer may legitimately spend that long before its own
  // teardown (saving a model).
  void set_release_timeout(Clock::duration timeout) { release_timeout_ = timeout; }
  Clock::duration release_timeout() const { return release_timeout_; }

  void count_read(std::size_t bytes) { bytes_read_.fetch_add(bytes, std::memory_order_relaxed); }
  std::uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }

 protected:
  explicit SharedMemory(NodeLayout layout) : layout_(std::move(layout)) {}
  // Whether the flags exist: they are allocated (collectively) by the first allocate, publish or
  // barrier, so a group that never uses shared memory never allocates any.
  bool in_use() const { return !control_.empty(); }
  // Collective over the node: true once every local rank called it, false at the deadline or on
  // `*stop` (the attempt is abandoned; the group is broken then).
  virtual bool meet(Clock::time_point deadline, const std::atomic<bool>* stop) = 0;
  // Collective over the node: every local rank's part of a new region of `bytes` per rank,
  // zero-filled; it returns on any rank only once every rank has zeroed its part.
  virtual std::vector<char*> allocate_region(std::size_t bytes) = 0;
  virtual void free_region(char* mine) = 0;
  // A full memory barrier in the library's memory model around flag updates (MPI_Win_sync).
  virtual void sync() {}
  // Frees every region; subclass destructors call it while they can still free.
  void release_all();

 private:
  struct Slot;
  Slot& slot(int local_rank) const;
  void ensure_control();

  NodeLayout layout_;
  std::vector<SharedRegion> regions_;
  std::uint64_t allocations_ = 0;
  std::vector<char*> control_;  // one Slot per local rank
  char* staging_ = nullptr;
  std::uint64_t epoch_ = 0;
  std::atomic<std::uint64_t> bytes_read_{0};
  Clock::duration release_timeout_ = std::chrono::seconds(60);
};

}  // namespace braid
