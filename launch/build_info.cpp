#include "launch/build_info.h"

#include <mpi.h>
#include <torch/version.h>

#include <string>

#include "common/version.h"

namespace braid {

std::string build_info() {
  // Allowed before MPI_Init, so --version works outside mpirun too.
  char library[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(library, &length);
  std::string mpi(library, static_cast<std::size_t>(length));
  mpi = mpi.substr(0, mpi.find_first_of("\n,"));  // Open MPI adds the repository and date
  const std::string cuda =
      BRAID_HAS_CUDA ? std::string("CUDA ") + BRAID_CUDA_VERSION + ", NCCL " + BRAID_NCCL_VERSION
                     : std::string("CPU only (built without the CUDA path)");
  return std::string("braid ") + BRAID_VERSION + "\n" + "  LibTorch " + TORCH_VERSION + "\n" +
         "  MPI: " + mpi + "\n" + "  GPU: " + cuda;
}

}  // namespace braid
