// For the tier-2 test programs that run under mpirun: the world's rank and size, and the body
// of main() (MPI_Init_thread with MPI_THREAD_MULTIPLE, every GoogleTest case, MPI_Finalize).
#pragma once

#include <gtest/gtest.h>
#include <mpi.h>

namespace braid::testing {

inline int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

inline int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

inline int run_mpi_tests(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  const int result = RUN_ALL_TESTS();
  MPI_Finalize();
  return result;
}

}  // namespace braid::testing
