#include "collectives/shared_memory_mpi.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>

#include "collectives/transport_mpi.h"
#include "common/error.h"

namespace braid {

namespace {

constexpr std::size_t kAlign = 64;

char* align(char* p) {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  return reinterpret_cast<char*>((address + kAlign - 1) & ~std::uintptr_t{kAlign - 1});
}

// RAII owners. A window is locked for passive access from creation to free. Destructors never
// throw: they run on teardown paths where the first error has already been reported.
class MpiWindow {
 public:
  explicit MpiWindow(MPI_Win win) : win_(win) {}
  ~MpiWindow() {
    if (win_ == MPI_WIN_NULL) return;
    MPI_Win_unlock_all(win_);
    MPI_Win_free(&win_);
  }
  MpiWindow(const MpiWindow&) = delete;
  MpiWindow& operator=(const MpiWindow&) = delete;
  MPI_Win get() const { return win_; }
  // Frees the window, with errors reported (collective over the node).
  void free() {
    MPI_Win win = win_;
    win_ = MPI_WIN_NULL;
    BRAID_MPI_CHECK(MPI_Win_unlock_all(win));
    BRAID_MPI_CHECK(MPI_Win_free(&win));
  }
  // Leaves the window to the end of the process (MPI_Finalize or exit): see ~MpiSharedMemory.
  void leak() { win_ = MPI_WIN_NULL; }

 private:
  MPI_Win win_;
};

struct MpiInfo {
  MPI_Info handle = MPI_INFO_NULL;
  MpiInfo() { BRAID_MPI_CHECK(MPI_Info_create(&handle)); }
  ~MpiInfo() { MPI_Info_free(&handle); }
  MpiInfo(const MpiInfo&) = delete;
  MpiInfo& operator=(const MpiInfo&) = delete;
};

class MpiSharedMemory : public SharedMemory {
 public:
  MpiSharedMemory(NodeLayout layout, MpiComm node)
      : SharedMemory(std::move(layout)), node_(std::move(node)) {}

  // MPI_Win_free synchronises the node: entered by some local ranks and not by others, it hangs
  // (a rank still saving its model arrives after its peers gave up). agree_to_release makes the
  // decision one for the whole node, waiting as long as an operation may; left behind, windows
  // are reclaimed at the end of the process.
  ~MpiSharedMemory() override {
    int finalized = 0;
    if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) {
      leak_all();
      node_.leak();
      return;
    }
    if (!agree_to_release(Clock::now() + release_timeout())) {
      leak_all();
      return;
    }
    try {
      release_all();
    } catch (const std::exception&) {
      leak_all();  // the node is broken; a failed MPI_Win_free leaves nothing to free safely
    }
  }

 protected:
  std::vector<char*> allocate_region(std::size_t bytes) override {
    MpiInfo info;
    // Each rank's part on its own pages (first touch by its owner: NUMA-local).
    BRAID_MPI_CHECK(MPI_Info_set(info.handle, "alloc_shared_noncontig", "true"));
    char* mine = nullptr;
    MPI_Win handle = MPI_WIN_NULL;
    BRAID_MPI_CHECK(MPI_Win_allocate_shared(static_cast<MPI_Aint>(bytes + kAlign), 1, info.handle,
                                            node_.get(), &mine, &handle));
    auto win = std::make_unique<MpiWindow>(handle);
    BRAID_MPI_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, win->get()));
    const NodeLayout& l = layout();
    std::vector<char*> bases(l.local_size);
    for (int i = 0; i < l.local_size; ++i) {
      MPI_Aint size = 0;
      int unit = 0;
      BRAID_MPI_CHECK(MPI_Win_shared_query(win->get(), i, &size, &unit, &bases[i]));
      // MPI promises less than a cache line; each segment is mapped page-aligned in every
      // process, so every process rounds a given part to the same place (kAlign spare bytes).
      bases[i] = align(bases[i]);
    }
    mine = bases[l.local_rank];
    if (bytes) std::memset(mine, 0, bytes);
    BRAID_MPI_CHECK(MPI_Win_sync(win->get()));
    BRAID_MPI_CHECK(MPI_Barrier(node_.get()));  // every part zeroed before anyone reads a flag
    windows_[bases[l.local_rank]] = std::move(win);
    return bases;
  }

  bool meet(Clock::time_point deadline, const std::atomic<bool>* stop) override {
    // A barrier that can be given up: MPI forbids cancelling it, so an abandoned one is left to
    // the end of the job (which a broken group is about to reach).
    MPI_Request request;
    BRAID_MPI_CHECK(MPI_Ibarrier(node_.get(), &request));
    return mpi_test_until(request, deadline, stop);
  }

  void free_region(char* mine) override {
    auto it = windows_.find(mine);
    if (it == windows_.end()) return;
    std::unique_ptr<MpiWindow> win = std::move(it->second);
    windows_.erase(it);
    win->free();
  }

  void sync() override {
    // Any window of the node orders loads and stores to all shared memory on x86 and in osc/sm;
    // calling it keeps the program correct under MPI's separate memory model as well.
    if (!windows_.empty()) BRAID_MPI_CHECK(MPI_Win_sync(windows_.begin()->second->get()));
  }

 private:
  void leak_all() {
    for (auto& [base, win] : windows_) win->leak();
    windows_.clear();
  }

  MpiComm node_;
  std::map<char*, std::unique_ptr<MpiWindow>> windows_;
};

}  // namespace

std::unique_ptr<SharedMemory> make_mpi_shared_memory(MPI_Comm comm, int node_key) {
  int rank = 0, size = 1;
  BRAID_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  BRAID_MPI_CHECK(MPI_Comm_size(comm, &size));
  MpiComm machine, node;
  BRAID_MPI_CHECK(
      MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, machine.out()));
  BRAID_MPI_CHECK(MPI_Comm_split(machine.get(), node_key < 0 ? 0 : node_key, rank, node.out()));
  // A node's key is the group rank of its lowest member: equal on the node, distinct across.
  int leader = rank, key = 0;
  BRAID_MPI_CHECK(MPI_Allreduce(&leader, &key, 1, MPI_INT, MPI_MIN, node.get()));
  std::vector<int> keys(size);
  BRAID_MPI_CHECK(MPI_Allgather(&key, 1, MPI_INT, keys.data(), 1, MPI_INT, comm));
  return std::make_unique<MpiSharedMemory>(NodeLayout::from_keys(keys, rank), std::move(node));
}

}  // namespace braid
