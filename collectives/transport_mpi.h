// MpiTransport: point-to-point over a duplicated MPI communicator (so braid's traffic never
// matches a user's messages), with MPI_ERRORS_RETURN so every failure becomes a CommError.
// Messages over 1 GiB go as several MPI messages, since MPI counts are int. Also offers the
// MPI library's own allreduce as the native capability (the baseline the algorithms beat),
// non-blocking and polled against the operation's deadline like every other algorithm.
//
// Shared memory (shared_memory()): MPI-3 windows among the ranks of a node. Its node
// communicator and layout are made by every constructor (collective, like the MPI_Comm_dup it
// follows), so shared_memory() itself never communicates; windows come at first use.
// `ranks_per_node` > 0 emulates nodes of that many consecutive ranks of `comm`,
// inherited by split() and dup() children. See shared_memory_mpi.h.
//
// Needs MPI_THREAD_MULTIPLE: each Communicator (and each channel) has its own communication
// thread calling MPI on its own MPI communicator, while the main thread may call MPI too.
//
// Receives are matched by probe before data moves (collectives/mpi_receives.h): a message of
// another size than expected is a CommError naming both sizes, never a write past the buffer.
// Memory MPI may still write after a failure: a receive whose message had not come when it was
// given up was never handed to MPI; one whose message had is completed before its request is
// destroyed (or the job is ended); a native allreduce that timed out cannot be cancelled (MPI
// forbids it), so it runs in a transport-owned scratch copy that is abandoned, never freed,
// unless the collective is seen to complete later. See transport_mpi.cpp.
#pragma once

#include <mpi.h>

#include <memory>
#include <vector>

#include "collectives/transport.h"

namespace braid {

class MpiReceives;

// Throws CommError naming the call if rc is not MPI_SUCCESS.
void mpi_check(int rc, const char* call);
#define BRAID_MPI_CHECK(call) ::braid::mpi_check((call), #call)

// Owns an MPI communicator that braid created: MPI_Comm_free on destruction (never after
// MPI_Finalize), unless leak() left it to the end of the process.
class MpiComm {
 public:
  MpiComm() = default;
  explicit MpiComm(MPI_Comm comm) : comm_(comm) {}
  ~MpiComm() { reset(); }
  MpiComm(MpiComm&& other) noexcept : comm_(other.comm_) { other.comm_ = MPI_COMM_NULL; }
  MpiComm& operator=(MpiComm&& other) noexcept;
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;

  MPI_Comm get() const { return comm_; }
  // For a call that creates the communicator: MPI_Comm_dup(parent, owned.out()).
  MPI_Comm* out();
  void leak() { comm_ = MPI_COMM_NULL; }
  void reset();

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

// Polls `request` until it completes (true), or returns false once `deadline` passes or `*stop`
// becomes true. For nonblocking collectives, which MPI does not let a caller cancel: a request
// given up on is left to MPI, with its buffers.
bool mpi_test_until(MPI_Request& request, Clock::time_point deadline,
                    const std::atomic<bool>* stop = nullptr);

// Returns once every rank of `comm` has called it, or throws a TimeoutError at `deadline` naming
// `step` and the ranks that had not arrived. Guards the set-up calls MPI offers no deadline for
// (MPI_Comm_dup, MPI_Comm_split, shared windows): once every rank has arrived, every rank
// enters them, so none waits there on a rank that never comes. Point-to-point, with `tag`
// reserved for it on `comm` (Transport: tags below 16 belong to set-up), so it never matches
// another operation's messages. A rank arriving after the others gave up passes and is left to
// the job's end: after a TimeoutError the runtime ends every rank (MPI_Abort).
void await_arrival(MPI_Comm comm, int tag, const char* step, Clock::time_point deadline);

class MpiTransport : public Transport, public NativeCollectives {
 public:
  // Duplicates `comm`; the transport owns the duplicate and frees it on destruction. Collective
  // over `comm`: a rank that has not arrived after `setup_timeout` ends the others in a
  // TimeoutError (an MPI_Ibarrier first, since `comm` is the caller's and its tags too).
  explicit MpiTransport(MPI_Comm comm, int ranks_per_node = 0,
                        Clock::duration setup_timeout = std::chrono::minutes(5));
  ~MpiTransport() override;
  MpiTransport(const MpiTransport&) = delete;
  MpiTransport& operator=(const MpiTransport&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "mpi"; }
  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override;
  RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) override;
  std::shared_ptr<Transport> split(int color, int key) override;
  std::shared_ptr<Transport> dup(Clock::time_point deadline) override;
  int max_tag() const override { return max_tag_; }
  NativeCollectives* native() override { return this; }
  SharedMemory* shared_memory() override;
  void mark_failed() override { failed_ = true; }

  bool allreduce(Buffer buffer, ReduceOp op, Clock::time_point deadline,
                 const std::atomic<bool>* stop) override;

  MPI_Comm comm() const { return comm_.get(); }

 private:
  struct Adopt {};
  MpiTransport(MpiComm comm, int node_key, Adopt);
  void init();

  // A native collective that did not finish in time, with the memory MPI may still write.
  struct Abandoned {
    MPI_Request request;
    std::unique_ptr<char[]> scratch;
  };

  MpiComm comm_;
  int rank_ = 0, size_ = 1, max_tag_ = 32767;
  int node_key_ = -1;  // emulated node of this rank, -1: the machine
  std::unique_ptr<MpiReceives> receives_;
  std::unique_ptr<SharedMemory> shared_memory_;
  std::unique_ptr<char[]> scratch_;  // native allreduce works here, then copies back
  std::size_t scratch_bytes_ = 0;
  std::vector<Abandoned> abandoned_;
  bool sends_stuck_ = false;  // a send was abandoned: the group is broken, later ones wait no more
  std::atomic<bool> failed_{false};
};

}  // namespace braid
