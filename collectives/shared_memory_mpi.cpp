#include "collectives/shared_memory_mpi.h"

#include <cstdint>
#include <cstring>
#include <map>

#include "collectives/transport_mpi.h"
#include "common/error.h"

namespace braid {

namespace {

constexpr auto kFreeGrace = std::chrono::seconds(1);
constexpr std::size_t kAlign = 64;

char* align(char* p) {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  return reinterpret_cast<char*>((address + kAlign - 1) & ~std::uintptr_t{kAlign - 1});
}

class MpiSharedMemory : public SharedMemory {
 public:
  MpiSharedMemory(NodeLayout layout, MPI_Comm node)
      : SharedMemory(std::move(layout)), node_(node) {}

  ~MpiSharedMemory() override {
    int finalized = 0;
    if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;
    int late = -1;
    if (!in_use()) {
      // nothing allocated
    } else if (barrier(Clock::now() + kFreeGrace, nullptr, &late)) {
      release_all();
    } else {
      windows_.clear();  // leaked on purpose: see the header
    }
    MPI_Comm_free(&node_);
  }

 protected:
  std::vector<char*> allocate_region(std::size_t bytes) override {
    MPI_Info info;
    BRAID_MPI_CHECK(MPI_Info_create(&info));
    // Each rank's part on its own pages (first touch by its owner: NUMA-local).
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    char* mine = nullptr;
    MPI_Win win;
    const int rc =
        MPI_Win_allocate_shared(static_cast<MPI_Aint>(bytes + kAlign), 1, info, node_, &mine, &win);
    MPI_Info_free(&info);
    mpi_check(rc, "MPI_Win_allocate_shared");
    BRAID_MPI_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, win));
    const NodeLayout& l = layout();
    std::vector<char*> bases(l.local_size);
    for (int i = 0; i < l.local_size; ++i) {
      MPI_Aint size = 0;
      int unit = 0;
      BRAID_MPI_CHECK(MPI_Win_shared_query(win, i, &size, &unit, &bases[i]));
      // MPI promises less than a cache line; each segment is mapped page-aligned in every
      // process, so every process rounds a given part to the same place (kAlign spare bytes).
      bases[i] = align(bases[i]);
    }
    mine = bases[l.local_rank];
    if (bytes) std::memset(mine, 0, bytes);
    BRAID_MPI_CHECK(MPI_Win_sync(win));
    BRAID_MPI_CHECK(MPI_Barrier(node_));  // every part zeroed before anyone reads a flag
    windows_[bases[l.local_rank]] = win;
    return bases;
  }

  bool meet(Clock::time_point deadline, const std::atomic<bool>* stop) override {
    // A barrier that can be given up: MPI forbids cancelling it, so an abandoned one is left to
    // the end of the job (which a broken group is about to reach).
    MPI_Request request;
    BRAID_MPI_CHECK(MPI_Ibarrier(node_, &request));
    return poll_until(
        [&] {
          int flag = 0;
          BRAID_MPI_CHECK(MPI_Test(&request, &flag, MPI_STATUS_IGNORE));
          return flag != 0;
        },
        deadline, stop);
  }

  void free_region(char* mine) override {
    auto it = windows_.find(mine);
    if (it == windows_.end()) return;
    MPI_Win win = it->second;
    windows_.erase(it);
    MPI_Win_unlock_all(win);
    MPI_Win_free(&win);
  }

  void sync() override {
    // Any window of the node orders loads and stores to all shared memory on x86 and in osc/sm;
    // calling it keeps the program correct under MPI's separate memory model as well.
    if (!windows_.empty()) MPI_Win_sync(windows_.begin()->second);
  }

 private:
  MPI_Comm node_;
  std::map<char*, MPI_Win> windows_;
};

}  // namespace

std::unique_ptr<SharedMemory> make_mpi_shared_memory(MPI_Comm comm, int node_key) {
  int rank = 0, size = 1;
  BRAID_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  BRAID_MPI_CHECK(MPI_Comm_size(comm, &size));
  MPI_Comm machine = MPI_COMM_NULL, node = MPI_COMM_NULL;
  BRAID_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &machine));
  const int rc = MPI_Comm_split(machine, node_key < 0 ? 0 : node_key, rank, &node);
  MPI_Comm_free(&machine);
  mpi_check(rc, "MPI_Comm_split(node)");
  try {
    // A node's key is the group rank of its lowest member: equal on the node, distinct across.
    int leader = rank, key = 0;
    BRAID_MPI_CHECK(MPI_Allreduce(&leader, &key, 1, MPI_INT, MPI_MIN, node));
    std::vector<int> keys(size);
    BRAID_MPI_CHECK(MPI_Allgather(&key, 1, MPI_INT, keys.data(), 1, MPI_INT, comm));
    return std::make_unique<MpiSharedMemory>(NodeLayout::from_keys(keys, rank), node);
  } catch (...) {
    MPI_Comm_free(&node);
    throw;
  }
}

}  // namespace braid
