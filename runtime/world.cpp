#include "runtime/world.h"

#include <mpi.h>

#include <cstdlib>
#include <string>

#include "collectives/transport_faulty.h"
#include "collectives/transport_mpi.h"
#include "collectives/transport_nccl.h"
#include "common/error.h"

namespace braid {

namespace {

int local_rank_from_environment() {
  for (const char* name :
       {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "PMI_LOCAL_RANK"}) {
    if (const char* value = std::getenv(name)) return std::atoi(value);
  }
  return -1;
}

}  // namespace

World::World(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  BRAID_CHECK(!initialized, "MPI is already initialized; construct one braid::World per process");
  BRAID_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &thread_level_));
  if (thread_level_ < MPI_THREAD_MULTIPLE) {
    MPI_Finalize();
    throw CommError(str_cat(
        "the MPI library offers thread level ", thread_level_, " but braid needs ",
        "MPI_THREAD_MULTIPLE (", MPI_THREAD_MULTIPLE, "): every communicator and channel has its ",
        "own communication thread calling MPI; use an MPI built with thread support (OpenMPI: ",
        "`ompi_info | grep -i thread` should say MPI_THREAD_MULTIPLE: yes)"));
  }
  BRAID_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  BRAID_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  local_rank_ = local_rank_from_environment();
  if (local_rank_ < 0) {
    MpiComm node;
    BRAID_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL,
                                        node.out()));
    BRAID_MPI_CHECK(MPI_Comm_rank(node.get(), &local_rank_));
  }
  BRAID_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, agreement_.out()));
}

World::~World() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  agreement_.reset();
  MPI_Finalize();
}

std::shared_ptr<Transport> World::make_transport(Device device, int ranks_per_node,
                                                 Clock::duration setup_timeout) const {
  if (device.is_cuda()) return make_nccl_transport(MPI_COMM_WORLD, device.index, setup_timeout);
  // Under launch/braid-slowlink the ranks stand for machines joined by the shaped link: shared
  // memory between them would carry traffic around it. Emulated nodes stay as asked.
  if (ranks_per_node == 0 && std::getenv("BRAID_SLOWLINK_NETNS")) ranks_per_node = 1;
  std::shared_ptr<Transport> transport =
      std::make_shared<MpiTransport>(MPI_COMM_WORLD, ranks_per_node, setup_timeout);
  if (const char* fault = std::getenv("BRAID_INJECT_FAULT")) {
    transport = std::make_shared<FaultyTransport>(transport, std::atoll(fault));
  }
  return transport;
}

int World::lowest_failing_rank(bool failed) const {
  int mine = failed ? rank_ : size_, lowest = size_;
  BRAID_MPI_CHECK(MPI_Allreduce(&mine, &lowest, 1, MPI_INT, MPI_MIN, agreement_.get()));
  return lowest == size_ ? -1 : lowest;
}

std::vector<std::uint64_t> World::all_values(std::uint64_t value) const {
  std::vector<std::uint64_t> all(size_);
  BRAID_MPI_CHECK(
      MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, agreement_.get()));
  return all;
}

void World::abort(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace braid
