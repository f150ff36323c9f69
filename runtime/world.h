// World: the process's place in the MPI job. One World object owns MPI_Init_thread and
// MPI_Finalize (constructed first in main, destroyed last). It requires MPI_THREAD_MULTIPLE and
// refuses to run below it (a CommError): every communicator and channel has its own
// communication thread calling MPI concurrently, and the main thread calls MPI too
// (lowest_failing_rank). Rank and size come from MPI_COMM_WORLD; the local rank (for choosing a
// device) from the launcher's environment: OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID,
// MPI_LOCALRANKID or PMI_LOCAL_RANK, else a node-local split of MPI_COMM_WORLD.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "collectives/transport.h"
#include "collectives/transport_mpi.h"

namespace braid {

class World {
 public:
  World(int* argc, char*** argv);
  // For `int main(int argc, const char* argv[])`; MPI may remove its own arguments from argv.
  World(int* argc, const char*** argv) : World(argc, const_cast<char***>(argv)) {}
  // Without the command line (MPI then reads none of it).
  World() : World(nullptr, static_cast<char***>(nullptr)) {}
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  // Rank 0: the rank that logs, evaluates and saves in a data-parallel program.
  bool is_main() const { return rank_ == 0; }
  int thread_level() const { return thread_level_; }

  // A transport over a duplicate of MPI_COMM_WORLD: MPI for a CPU `device`, NCCL on that GPU
  // for a CUDA one (collectives/transport_nccl.h; collective either way). With
  // BRAID_INJECT_FAULT=K in the environment (a testing hook), the K-th send or receive of this
  // rank fails with a CommError (MPI only). `ranks_per_node` > 0 makes each that many
  // consecutive ranks a node for shared memory and "hierarchical" (runtime.ranks_per_node);
  // 0 takes the nodes MPI reports, except under launch/braid-slowlink (BRAID_SLOWLINK_NETNS
  // set), where every rank is a node of its own so that all traffic crosses the shaped link.
  // A rank that has not arrived within `setup_timeout` ends the others in a TimeoutError.
  std::shared_ptr<Transport> make_transport(
      Device device = {}, int ranks_per_node = 0,
      Clock::duration setup_timeout = std::chrono::minutes(5)) const;

  // Collective: every rank says whether it failed; returns the lowest failing rank, or -1 when
  // none did. Lets all ranks leave together (same exit code) after an error some ranks saw.
  // It and all_values() run on a duplicate of MPI_COMM_WORLD of their own, so they never pair
  // with a user's collectives on MPI_COMM_WORLD.
  int lowest_failing_rank(bool failed) const;
  // Collective: every rank's `value`, in rank order; for comparisons before any Communicator
  // exists (a Communicator's own first collectives depend on options the ranks must agree on).
  std::vector<std::uint64_t> all_values(std::uint64_t value) const;

  // Ends every rank of the job with `code` (MPI_Abort), so no peer waits forever.
  [[noreturn]] static void abort(int code);

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, thread_level_ = 0;
  MpiComm agreement_;
};

}  // namespace braid
