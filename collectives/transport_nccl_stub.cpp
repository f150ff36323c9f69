// transport_nccl.h without the CUDA path.
#include "collectives/transport_nccl.h"
#include "common/error.h"

namespace braid {

std::shared_ptr<Transport> make_nccl_transport(MPI_Comm, int, Clock::duration) {
  throw CommError(
      "the NCCL transport needs a CUDA build of braid (configure with -DBRAID_CUDA=ON where the "
      "CUDA toolkit and NCCL are installed)");
}

DeviceCollectives* device_collectives(Transport&) { return nullptr; }

}  // namespace braid
