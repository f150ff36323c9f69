#include "collectives/transport_thread.h"

#include <algorithm>
#include <array>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <tuple>

#include "collectives/shared_memory.h"
#include "common/error.h"

namespace braid {

namespace {
constexpr int kSplitTag = -2;
constexpr int kSharedTag = -3;

// Every rank's `value` (a collective over the group's messages with tag `tag`). *arrived (when
// given) says whether every rank's value came before the deadline or `*stop`.
template <typename T>
std::vector<T> exchange_all(Transport& transport, T value, const std::vector<int>& ranks, int tag,
                            Clock::time_point deadline = Clock::time_point::max(),
                            const std::atomic<bool>* stop = nullptr, bool* arrived = nullptr) {
  std::vector<T> all(ranks.size());
  std::vector<RequestPtr> requests;
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i] == transport.rank()) {
      all[i] = value;
      continue;
    }
    requests.push_back(transport.irecv(&all[i], sizeof(T), ranks[i], tag));
    requests.push_back(transport.isend(&value, sizeof(T), ranks[i], tag));
  }
  for (auto& request : requests) {
    if (!request->wait_until(deadline, stop)) {
      if (arrived) *arrived = false;
      return all;
    }
  }
  if (arrived) *arrived = true;
  return all;
}

}  // namespace

class ThreadRecv;

// A rank's mailbox: unexpected messages and posted receives, both keyed by (source, tag).
struct Mailbox {
  std::mutex mutex;
  std::condition_variable arrived;
  std::map<std::pair<int, int>, std::deque<std::vector<char>>> unexpected;
  std::map<std::pair<int, int>, std::deque<ThreadRecv*>> posted;
};

class ThreadWorld {
 public:
  explicit ThreadWorld(int size) : size_(size), mailboxes_(size) {}
  int size() const { return size_; }
  Mailbox& mailbox(int rank) { return mailboxes_[rank]; }

  // Zeroed memory that lives as long as the world (see the header on why it is never freed).
  char* keep(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(children_mutex_);
    kept_.emplace_back(new std::uint64_t[(bytes + 63) / 8 + 8]());
    auto address = reinterpret_cast<std::uintptr_t>(kept_.back().get());
    return reinterpret_cast<char*>((address + 63) & ~std::uintptr_t{63});
  }

  std::shared_ptr<ThreadWorld> child(int split, int color, int size) {
    std::lock_guard<std::mutex> lock(children_mutex_);
    auto& world = children_[{split, color}];
    if (!world) world = std::make_shared<ThreadWorld>(size);
    return world;
  }

 private:
  int size_;
  std::vector<Mailbox> mailboxes_;
  std::mutex children_mutex_;
  std::map<std::pair<int, int>, std::shared_ptr<ThreadWorld>> children_;
  std::vector<std::unique_ptr<std::uint64_t[]>> kept_;
};

// Threads share memory: a region is each rank's own allocation, with addresses exchanged as
// messages among the node's ranks.
class ThreadSharedMemory : public SharedMemory {
 public:
  ThreadSharedMemory(NodeLayout layout, Transport& transport, ThreadWorld& world)
      : SharedMemory(std::move(layout)), transport_(transport), world_(world) {}

 protected:
  std::vector<char*> allocate_region(std::size_t bytes) override {
    return exchange_all(transport_, world_.keep(bytes), layout().node_ranks, kSharedTag);
  }
  void free_region(char*) override {}  // kept by the world
  bool meet(Clock::time_point deadline, const std::atomic<bool>* stop) override {
    bool arrived = false;
    exchange_all(transport_, 0, layout().node_ranks, kSharedTag, deadline, stop, &arrived);
    return arrived;
  }

 private:
  Transport& transport_;
  ThreadWorld& world_;
};

class ThreadSend : public Request {
 public:
  using Request::Request;
  bool test() override { return true; }
};

class ThreadRecv : public Request {
 public:
  ThreadRecv(Transport* owner, Mailbox* box, void* data, std::size_t bytes, int peer, int tag)
      : Request(peer, tag, bytes, /*is_recv=*/true), owner_(owner), box_(box), data_(data) {}

  ~ThreadRecv() override {
    std::lock_guard<std::mutex> lock(box_->mutex);
    if (done_) return;
    auto& queue = box_->posted[{peer(), tag()}];
    queue.erase(std::remove(queue.begin(), queue.end(), this), queue.end());
  }

  // Called with the mailbox lock held.
  void deliver(const char* message, std::size_t size) {
    if (size != bytes()) {
      error_ = str_cat("message from rank ", peer(), " with tag ", tag(), " has ", size,
                       " bytes, receiver expected ", bytes());
    } else {
      if (size) std::memcpy(data_, message, size);
      owner_->count(*this);
    }
    done_ = true;
  }

  bool test() override {
    std::lock_guard<std::mutex> lock(box_->mutex);
    return finished();
  }

  using Request::wait_until;
  bool wait_until(Clock::time_point deadline, const std::atomic<bool>* stop) override {
    // Sleeps on the mailbox; wakes every few milliseconds to see `stop`, which nobody notifies.
    constexpr auto kStopPoll = std::chrono::milliseconds(5);
    std::unique_lock<std::mutex> lock(box_->mutex);
    for (;;) {
      if (done_) return finished();
      if (stop && stop->load(std::memory_order_relaxed)) return false;
      const auto now = Clock::now();
      if (now >= deadline) return false;
      box_->arrived.wait_until(lock, deadline - now < kStopPoll ? deadline : now + kStopPoll);
    }
  }

 private:
  bool finished() {
    if (done_ && !error_.empty()) throw CommError(error_);
    return done_;
  }

  Transport* owner_;
  Mailbox* box_;
  void* data_;
  bool done_ = false;
  std::string error_;
};

std::vector<std::shared_ptr<Transport>> ThreadTransport::create_world(int size,
                                                                      int ranks_per_node) {
  BRAID_CHECK(size > 0, "world size ", size);
  BRAID_CHECK(ranks_per_node >= 0, "ranks per node ", ranks_per_node);
  auto world = std::make_shared<ThreadWorld>(size);
  std::vector<std::shared_ptr<Transport>> ranks;
  std::vector<int> node_keys(size);
  for (int r = 0; r < size; ++r) node_keys[r] = ranks_per_node > 0 ? r / ranks_per_node : 0;
  for (int r = 0; r < size; ++r)
    ranks.push_back(std::make_shared<ThreadTransport>(world, r, node_keys));
  return ranks;
}

ThreadTransport::ThreadTransport(std::shared_ptr<ThreadWorld> world, int rank,
                                 std::vector<int> node_keys)
    : world_(std::move(world)), rank_(rank), node_keys_(std::move(node_keys)) {
  BRAID_CHECK(static_cast<int>(node_keys_.size()) == world_->size(), node_keys_.size(),
              " node keys for ", world_->size(), " ranks");
  init_counters(world_->size());
  shared_memory_ = std::make_unique<ThreadSharedMemory>(NodeLayout::from_keys(node_keys_, rank_),
                                                        *this, *world_);
}

ThreadTransport::~ThreadTransport() = default;

SharedMemory* ThreadTransport::shared_memory() { return shared_memory_.get(); }

int ThreadTransport::size() const { return world_->size(); }

int ThreadTransport::max_tag() const { return INT_MAX; }

RequestPtr ThreadTransport::isend(const void* data, std::size_t bytes, int peer, int tag) {
  BRAID_CHECK(peer >= 0 && peer < size(), "send to rank ", peer, " of ", size());
  auto request = std::make_unique<ThreadSend>(peer, tag, bytes, /*is_recv=*/false);
  Mailbox& box = world_->mailbox(peer);
  {
    std::lock_guard<std::mutex> lock(box.mutex);
    auto& posted = box.posted[{rank_, tag}];
    if (!posted.empty()) {
      ThreadRecv* recv = posted.front();
      posted.pop_front();
      recv->deliver(static_cast<const char*>(data), bytes);
    } else {
      const char* begin = static_cast<const char*>(data);
      box.unexpected[{rank_, tag}].emplace_back(begin, begin + bytes);
    }
  }
  box.arrived.notify_all();
  count(*request);
  return request;
}

RequestPtr ThreadTransport::irecv(void* data, std::size_t bytes, int peer, int tag) {
  BRAID_CHECK(peer >= 0 && peer < size(), "receive from rank ", peer, " of ", size());
  Mailbox& box = world_->mailbox(rank_);
  auto request = std::make_unique<ThreadRecv>(this, &box, data, bytes, peer, tag);
  std::lock_guard<std::mutex> lock(box.mutex);
  auto& queue = box.unexpected[{peer, tag}];
  if (!queue.empty()) {
    request->deliver(queue.front().data(), queue.front().size());
    queue.pop_front();
  } else {
    box.posted[{peer, tag}].push_back(request.get());
  }
  return request;
}

std::shared_ptr<Transport> ThreadTransport::split(int color, int key) {
  // Every rank tells every other rank its (color, key); members of a color then meet in a
  // child world registered under (split number, color).
  const int n = size();
  std::vector<std::array<int, 3>> all(n);  // (color, key, node key)
  all[rank_] = {color, key, node_keys_[rank_]};
  std::vector<RequestPtr> requests;
  for (int peer = 0; peer < n; ++peer) {
    if (peer == rank_) continue;
    requests.push_back(irecv(&all[peer], sizeof(all[peer]), peer, kSplitTag));
  }
  for (int peer = 0; peer < n; ++peer) {
    if (peer != rank_) requests.push_back(isend(&all[rank_], sizeof(all[rank_]), peer, kSplitTag));
  }
  for (auto& request : requests) request->wait_until(Clock::time_point::max());
  std::vector<std::tuple<int, int>> members;  // (key, old rank)
  for (int r = 0; r < n; ++r) {
    if (all[r][0] == color) members.emplace_back(all[r][1], r);
  }
  std::sort(members.begin(), members.end());
  int new_rank = static_cast<int>(
      std::find(members.begin(), members.end(), std::make_tuple(key, rank_)) - members.begin());
  std::vector<int> node_keys;
  for (const auto& member : members) node_keys.push_back(all[std::get<1>(member)][2]);
  auto child = world_->child(splits_++, color, static_cast<int>(members.size()));
  return std::make_shared<ThreadTransport>(child, new_rank, std::move(node_keys));
}

}  // namespace braid
