// MpiSharedMemory: SharedMemory over MPI-3 shared-memory windows. The node is
// MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) of the group, split further by an emulated node key
// when runtime.ranks_per_node is set (so an emulated node never spans two machines). Each region
// is one MPI_Win_allocate_shared window, locked for passive access (MPI_Win_lock_all) so that
// MPI_Win_sync orders the flag updates of SharedMemory::barrier in MPI's memory model too.
//
// Freeing: MPI_Win_free synchronises the node, so a rank whose peer stalled or died would hang in
// it. The destructor first meets the node at a flag barrier with a short grace and frees the
// windows only when every local rank arrived; otherwise it leaves them to MPI_Finalize (or to
// the end of the process, which a broken job is about to reach).
#pragma once

#include <mpi.h>

#include <memory>

#include "collectives/shared_memory.h"

namespace braid {

// Collective over `comm`. `node_key` >= 0: ranks with equal keys (and one machine) form a node;
// -1: every machine is one node.
std::unique_ptr<SharedMemory> make_mpi_shared_memory(MPI_Comm comm, int node_key);

}  // namespace braid
