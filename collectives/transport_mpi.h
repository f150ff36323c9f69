// MpiTransport: point-to-point over a duplicated MPI communicator (so braid's traffic never
// matches a user's messages), with MPI_ERRORS_RETURN so every failure becomes a CommError.
// Messages over 1 GiB go as several MPI messages, since MPI counts are int. Also offers the
// MPI library's own allreduce as the native capability (the baseline the algorithms beat).
#pragma once

#include <mpi.h>

#include "collectives/transport.h"

namespace braid {

// Throws CommError naming the call if rc is not MPI_SUCCESS.
void mpi_check(int rc, const char* call);
#define BRAID_MPI_CHECK(call) ::braid::mpi_check((call), #call)

class MpiTransport : public Transport, public NativeCollectives {
 public:
  // Duplicates `comm`; the transport owns the duplicate and frees it on destruction.
  explicit MpiTransport(MPI_Comm comm);
  ~MpiTransport() override;
  MpiTransport(const MpiTransport&) = delete;
  MpiTransport& operator=(const MpiTransport&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "mpi"; }
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override;
  RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) override;
  std::shared_ptr<Transport> split(int color, int key) override;
  NativeCollectives* native() override { return this; }

  void allreduce(Buffer buffer, ReduceOp op, Clock::time_point deadline) override;

  MPI_Comm comm() const { return comm_; }

 private:
  struct Adopt {};
  MpiTransport(MPI_Comm comm, Adopt);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

}  // namespace braid
