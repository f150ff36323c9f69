// NCCL transport: braid's Transport over an NCCL communicator, for one rank per GPU.
//
// Memory decides the path: CUDA memory moves through NCCL on the transport's own CUDA stream;
// CPU memory (control messages, compressed payloads, debug checks) and empty messages move
// through the MPI transport that the NCCL communicator was bootstrapped over (rank 0's
// ncclUniqueId is broadcast on it). Both sides of a message see the same kind of memory because
// every rank runs the same algorithm on the same kind of buffer.
//
// Send/receive: NCCL has no tags and matches messages between a pair in issue order; braid runs
// one operation at a time per transport and every Communicator has its own dup(), so issue order
// is tag order. isend/irecv only queue; the first test() of a queued request launches, as one
// ncclGroupStart/End on the stream, every request queued up to it and every queued send, then
// records a CUDA event that test() polls (cudaEventQuery: never blocks the host thread). A group
// completes as a whole, so pipelined algorithms must not post receives for a later step before
// waiting for an earlier one inside a group: Communicators over this transport use one segment
// per step (CommOptions' segment size is raised). NCCL cannot check sizes: a receive trusts
// that its sender sent as many bytes, which braid's algorithms derive identically on every rank.
//
// Deadlines: a request destroyed before it completed (a wait that timed out, an error, an abort)
// calls ncclCommAbort: NCCL kernels stop, nothing writes into the buffers afterwards, and the
// transport is broken (every later call throws CommError naming the first failure).
//
// Capabilities: native() is ncclAllReduce; device_collectives() gives ncclReduceScatter,
// ncclAllGather and ncclBroadcast. Both poll an event against the deadline like send/receive.
//
// One implementation per build: transport_nccl.cpp with the CUDA path, transport_nccl_stub.cpp
// without it (make_nccl_transport throws CommError naming the build option).
#pragma once

#include <mpi.h>

#include <memory>

#include "collectives/transport.h"

namespace braid {

// NCCL's own collectives on CUDA buffers, beside NativeCollectives::allreduce. Each returns
// false, with the communicator aborted, when the deadline passes or `*stop` becomes true first.
class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  // output (input.count / size() elements) = this rank's chunk of the reduction; input.count
  // must be a multiple of size().
  virtual bool reduce_scatter(Buffer input, Buffer output, ReduceOp op, Clock::time_point deadline,
                              const std::atomic<bool>* stop) = 0;
  // output (size() * input.count elements) = every rank's input, in rank order.
  virtual bool allgather(Buffer input, Buffer output, Clock::time_point deadline,
                         const std::atomic<bool>* stop) = 0;
  virtual bool broadcast(Buffer buffer, int root, Clock::time_point deadline,
                         const std::atomic<bool>* stop) = 0;
};

// Collective over `comm`: an NCCL transport on CUDA device `device` (the caller picked it from
// its local rank). Throws CommError when braid was built without CUDA, or when CUDA or NCCL
// fail (naming the call and NCCL's message), and TimeoutError naming the set-up step (arrival,
// the ncclUniqueId broadcast, ncclCommInitRank) when a rank has not completed it within
// `setup_timeout`.
std::shared_ptr<Transport> make_nccl_transport(
    MPI_Comm comm, int device, Clock::duration setup_timeout = std::chrono::minutes(5));

// The NCCL collectives of `transport`, or nullptr when it is not an NCCL transport.
DeviceCollectives* device_collectives(Transport& transport);

}  // namespace braid
