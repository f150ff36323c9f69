#include "collectives/shared_memory.h"

#include <algorithm>
#include <new>
#include <type_traits>

#include "common/error.h"

namespace braid {

namespace {
constexpr std::uint64_t kUndecided = 0, kFree = 1, kLeak = 2;
}  // namespace

// One cache line per local rank, so a rank's flag stores never contend with a peer's.
struct alignas(64) SharedMemory::Slot {
  std::atomic<std::uint64_t> epoch;
  // (epoch << 32) + units done: a value from an earlier phase reads as 0 without a reset, and a
  // peer never sees a later phase's value (it cannot pass the next barrier without this rank).
  std::atomic<std::uint64_t> progress;
  std::atomic<std::uint64_t> leaving;   // 1 once this rank is in agree_to_release
  std::atomic<std::uint64_t> teardown;  // local rank 0's only: the node's kFree or kLeak
  std::uint64_t words[SharedMemory::kWords];
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "flags in shared memory must be lock-free (address-free) atomics");

NodeLayout NodeLayout::from_keys(const std::vector<int>& keys, int rank) {
  NodeLayout layout;
  std::vector<int> first_rank_of_node;  // nodes in order of their lowest rank
  std::vector<int> node_of(keys.size());
  for (std::size_t r = 0; r < keys.size(); ++r) {
    auto it = std::find_if(first_rank_of_node.begin(), first_rank_of_node.end(),
                           [&](int first) { return keys[first] == keys[r]; });
    node_of[r] = static_cast<int>(it - first_rank_of_node.begin());
    if (it == first_rank_of_node.end()) first_rank_of_node.push_back(static_cast<int>(r));
  }
  layout.nodes = static_cast<int>(first_rank_of_node.size());
  layout.node = node_of[rank];
  std::vector<int> sizes(layout.nodes, 0), local_rank_of(keys.size());
  for (std::size_t r = 0; r < keys.size(); ++r) local_rank_of[r] = sizes[node_of[r]]++;
  layout.local_rank = local_rank_of[rank];
  layout.local_size = sizes[layout.node];
  layout.uniform =
      std::all_of(sizes.begin(), sizes.end(), [&](int size) { return size == layout.local_size; });
  for (std::size_t r = 0; r < keys.size(); ++r) {
    if (node_of[r] == layout.node) layout.node_ranks.push_back(static_cast<int>(r));
    if (local_rank_of[r] == layout.local_rank) layout.index_ranks.push_back(static_cast<int>(r));
  }
  return layout;
}

void SharedMemory::ensure_control() {
  if (!control_.empty()) return;
  control_ = allocate_region(sizeof(Slot));
  // The region arrives zeroed on every rank (allocate_region's contract), which reads as epoch 0
  // (not arrived) through any rank's view. Peers may already be polling this slot (their
  // allocate_region returned first), so starting its lifetime must write nothing: default-
  // initialisation of a trivially constructible Slot, not Slot{}, which stores zeros over a
  // flag a peer is reading (or over a teardown decision a peer already made).
  static_assert(std::is_trivially_default_constructible_v<Slot>,
                "default-initialising a Slot must not write to memory peers already read");
  new (control_[layout_.local_rank]) Slot;
}

SharedMemory::Slot& SharedMemory::slot(int local_rank) const {
  static_assert(sizeof(Slot) == 64, "one cache line per local rank");
  return *reinterpret_cast<Slot*>(control_[local_rank]);
}

bool SharedMemory::prepare(Clock::time_point deadline, const std::atomic<bool>* stop) {
  if (in_use()) return true;
  if (!meet(deadline, stop)) return false;
  ensure_control();
  return true;
}

char* SharedMemory::allocate(std::size_t bytes) {
  ensure_control();
  SharedRegion region;
  region.id = ++allocations_;
  region.bytes = bytes;
  region.base = allocate_region(bytes);
  regions_.push_back(region);
  return region.base[layout_.local_rank];
}

void SharedMemory::free(char* mine) {
  auto it = std::find_if(regions_.begin(), regions_.end(), [&](const SharedRegion& region) {
    return region.base[layout_.local_rank] == mine;
  });
  BRAID_CHECK(it != regions_.end(), "free of memory that SharedMemory did not allocate");
  free_region(mine);
  regions_.erase(it);
}

void SharedMemory::release_all() {
  while (!regions_.empty()) free(regions_.back().base[layout_.local_rank]);
  if (!control_.empty()) free_region(control_[layout_.local_rank]);
  control_.clear();
  staging_ = nullptr;
}

const SharedRegion* SharedMemory::find(const void* data, std::size_t bytes,
                                       std::size_t* offset) const {
  const char* p = static_cast<const char*>(data);
  for (const SharedRegion& region : regions_) {
    const char* base = region.base[layout_.local_rank];
    if (base != staging_ && p >= base && p + bytes <= base + region.bytes) {
      *offset = static_cast<std::size_t>(p - base);
      return &region;
    }
  }
  return nullptr;
}

const SharedRegion& SharedMemory::staging(std::size_t bytes) {
  auto current = [&]() -> SharedRegion* {
    for (SharedRegion& region : regions_) {
      if (region.base[layout_.local_rank] == staging_) return &region;
    }
    return nullptr;
  };
  SharedRegion* region = current();
  if (region && region->bytes >= bytes) return *region;
  if (region) free(staging_);
  staging_ = allocate(std::max<std::size_t>(bytes, 64));
  return *current();
}

void SharedMemory::publish(const std::array<std::uint64_t, kWords>& words) {
  ensure_control();
  Slot& mine = slot(layout_.local_rank);
  for (int i = 0; i < kWords; ++i) mine.words[i] = words[i];
}

std::uint64_t SharedMemory::published(int local_rank, int word) const {
  BRAID_CHECK(word >= 0 && word < kWords, "published word ", word);
  return slot(local_rank).words[word];
}

bool SharedMemory::agree_to_release(Clock::time_point deadline) {
  if (!in_use()) return false;
  sync();
  slot(layout_.local_rank).leaving.store(1, std::memory_order_release);
  std::atomic<std::uint64_t>& decision = slot(0).teardown;
  auto decide = [&](std::uint64_t proposal) {
    std::uint64_t expected = kUndecided;
    decision.compare_exchange_strong(expected, proposal, std::memory_order_acq_rel);
  };
  auto all_arrived = [&] {
    for (int i = 0; i < layout_.local_size; ++i) {
      if (slot(i).leaving.load(std::memory_order_acquire) == 0) return false;
    }
    return true;
  };
  const bool decided = poll_until(
      [&] {
        if (decision.load(std::memory_order_acquire) != kUndecided) return true;
        if (!all_arrived()) return false;
        decide(kFree);
        return true;
      },
      deadline, nullptr);
  if (!decided) decide(kLeak);
  sync();
  return decision.load(std::memory_order_acquire) == kFree;
}

bool SharedMemory::barrier(Clock::time_point deadline, const std::atomic<bool>* stop, int* late,
                           const std::function<void(int)>& waiting) {
  ensure_control();
  ++epoch_;
  sync();
  slot(layout_.local_rank).epoch.store(epoch_, std::memory_order_release);
  for (int i = 0; i < layout_.local_size; ++i) {
    const auto& flag = slot(i).epoch;
    if (waiting && flag.load(std::memory_order_acquire) < epoch_) waiting(i);
    if (!poll_until([&] { return flag.load(std::memory_order_acquire) >= epoch_; }, deadline,
                    stop)) {
      *late = i;
      return false;
    }
  }
  sync();
  return true;
}

void SharedMemory::advance(std::uint64_t done) {
  BRAID_CHECK(done < (std::uint64_t{1} << 32),
              "shared-memory progress counts fewer than 2^32 units");
  sync();
  slot(layout_.local_rank).progress.store((epoch_ << 32) + done, std::memory_order_release);
}

std::uint64_t SharedMemory::progress(int local_rank) {
  const std::uint64_t value = slot(local_rank).progress.load(std::memory_order_acquire);
  sync();
  const std::uint64_t phase = epoch_ << 32;
  return value >= phase ? value - phase : 0;
}

}  // namespace braid
