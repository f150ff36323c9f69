#include "collectives/transport_nccl.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "collectives/cuda_check.h"
#include "collectives/transport_mpi.h"

namespace braid {

namespace {

void nccl_check(ncclResult_t rc, const char* call) {
  if (rc != ncclSuccess && rc != ncclInProgress) {
    throw CommError(str_cat(call, " failed: ", ncclGetErrorString(rc)));
  }
}
#define BRAID_NCCL_CHECK(call) nccl_check((call), #call)

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return ncclFloat32;
    case DType::kFloat64:
      return ncclFloat64;
    case DType::kFloat16:
      return ncclFloat16;
    case DType::kBFloat16:
      return ncclBfloat16;
    case DType::kInt32:
      return ncclInt32;
    case DType::kInt64:
      return ncclInt64;
    case DType::kUInt8:
      return ncclUint8;
  }
  return ncclUint8;
}

// kAvg reduces as a sum: the Communicator divides once, as for every algorithm.
ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return ncclSum;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

bool is_device_memory(const void* data) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, data) != cudaSuccess) {
    cudaGetLastError();  // host memory unknown to CUDA on old drivers
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
}

// RAII owners of the CUDA and NCCL handles.
// Both are created on `device`: a stream or event belongs to the device current at creation,
// and recording an event of one device on another device's stream fails.
struct Stream {
  cudaStream_t handle = nullptr;
  explicit Stream(int device) {
    CudaDeviceGuard guard(device);
    BRAID_CUDA_CHECK(cudaStreamCreateWithFlags(&handle, cudaStreamNonBlocking));
  }
  ~Stream() { cudaStreamDestroy(handle); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

struct Event {
  cudaEvent_t handle = nullptr;
  explicit Event(int device) {
    CudaDeviceGuard guard(device);
    BRAID_CUDA_CHECK(cudaEventCreateWithFlags(&handle, cudaEventDisableTiming));
  }
  ~Event() { cudaEventDestroy(handle); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
};

struct NcclComm {
  ncclComm_t handle = nullptr;
  bool aborted = false;
  ~NcclComm() {
    if (handle && !aborted) ncclCommDestroy(handle);
  }
};

class NcclTransport;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A queued or launched send/receive of CUDA memory.
class NcclRequest : public Request {
 public:
  NcclRequest(NcclTransport* owner, const void* data, std::size_t bytes, int peer, int tag,
              bool is_recv)
      : Request(peer, tag, bytes, is_recv), owner_(owner), data_(data) {}
  ~NcclRequest() override;
  bool test() override;

  const void* data() const { return data_; }
  std::shared_ptr<Event> event;  // set when the group holding this request is launched

 private:
  NcclTransport* owner_;
  const void* data_;
  bool done_ = false;
};

class NcclTransport : public Transport, public NativeCollectives, public DeviceCollectives {
 public:
  NcclTransport(std::shared_ptr<MpiTransport> host, int device, Clock::duration setup_timeout,
                Clock::time_point deadline)
      : host_(std::move(host)), device_(device), setup_timeout_(setup_timeout), stream_(device) {
    CudaDeviceGuard guard(device_);
    // Every rank has just passed the host transport's deadline-bounded arrival check (its
    // constructor, or MpiTransport::dup for a child); a rank that dies or stalls after it is
    // caught by the deadlines of the two steps below.
    comm_.handle = init_nccl(broadcast_id(deadline), deadline);
    init_counters(host_->size());
  }
  ~NcclTransport() override {
    // Everything launched has completed or was aborted (requests settle in their destructors).
    CudaDeviceGuard guard(device_);
    cudaStreamSynchronize(stream_.handle);
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  const char* name() const override { return "nccl"; }
  int max_tag() const override { return host_->max_tag(); }
  bool moves_device_memory() const override { return true; }
  NativeCollectives* native() override { return this; }
  DeviceCollectives* collectives() { return this; }

  std::uint64_t bytes_sent() const override {
    return Transport::bytes_sent() + host_->bytes_sent();
  }
  std::uint64_t bytes_recv() const override {
    return Transport::bytes_recv() + host_->bytes_recv();
  }
  std::uint64_t bytes_sent_to(int peer) const override {
    return Transport::bytes_sent_to(peer) + host_->bytes_sent_to(peer);
  }
  std::uint64_t bytes_recv_from(int peer) const override {
    return Transport::bytes_recv_from(peer) + host_->bytes_recv_from(peer);
  }

  RequestPtr isend(const void* data, std::size_t bytes, int peer, int tag) override {
    return post(data, bytes, peer, tag, /*is_recv=*/false);
  }
  RequestPtr irecv(void* data, std::size_t bytes, int peer, int tag) override {
    return post(data, bytes, peer, tag, /*is_recv=*/true);
  }

  std::shared_ptr<Transport> split(int color, int key) override {
    return make_child(host_->split(color, key), Clock::now() + setup_timeout_);
  }
  std::shared_ptr<Transport> dup(Clock::time_point deadline) override {
    return make_child(host_->dup(deadline), deadline);
  }

  bool allreduce(Buffer buffer, ReduceOp op, Clock::time_point deadline,
                 const std::atomic<bool>* stop) override {
    if (buffer.device.is_cpu()) return host_->allreduce(buffer, op, deadline, stop);
    return run_native("ncclAllReduce", deadline, stop, [&] {
      BRAID_NCCL_CHECK(ncclAllReduce(buffer.data, buffer.data, buffer.count,
                                     nccl_type(buffer.dtype), nccl_op(op), comm_.handle,
                                     stream_.handle));
    });
  }

  bool reduce_scatter(Buffer input, Buffer output, ReduceOp op, Clock::time_point deadline,
                      const std::atomic<bool>* stop) override {
    BRAID_CHECK(input.count == output.count * size() && input.dtype == output.dtype,
                "ncclReduceScatter needs input = ", size(), " x output elements; got ", input.count,
                " and ", output.count);
    check_device(input, "ncclReduceScatter");
    check_device(output, "ncclReduceScatter");
    return run_native("ncclReduceScatter", deadline, stop, [&] {
      BRAID_NCCL_CHECK(ncclReduceScatter(input.data, output.data, output.count,
                                         nccl_type(input.dtype), nccl_op(op), comm_.handle,
                                         stream_.handle));
    });
  }

  bool allgather(Buffer input, Buffer output, Clock::time_point deadline,
                 const std::atomic<bool>* stop) override {
    BRAID_CHECK(output.count == input.count * size() && input.dtype == output.dtype,
                "ncclAllGather needs output = ", size(), " x input elements; got ", output.count,
                " and ", input.count);
    check_device(input, "ncclAllGather");
    check_device(output, "ncclAllGather");
    return run_native("ncclAllGather", deadline, stop, [&] {
      BRAID_NCCL_CHECK(ncclAllGather(input.data, output.data, input.count, nccl_type(input.dtype),
                                     comm_.handle, stream_.handle));
    });
  }

  bool broadcast(Buffer buffer, int root, Clock::time_point deadline,
                 const std::atomic<bool>* stop) override {
    BRAID_CHECK(root >= 0 && root < size(), "broadcast root ", root, " of ", size());
    check_device(buffer, "ncclBroadcast");
    return run_native("ncclBroadcast", deadline, stop, [&] {
      BRAID_NCCL_CHECK(ncclBroadcast(buffer.data, buffer.data, buffer.count,
                                     nccl_type(buffer.dtype), root, comm_.handle, stream_.handle));
    });
  }

  // Launches every queued request up to `upto` and every queued send as one group.
  void launch(const NcclRequest* upto) {
    check_usable();
    std::vector<NcclRequest*> group, rest;
    bool reached = false;
    for (NcclRequest* request : queued_) {
      (reached && request->is_recv() ? rest : group).push_back(request);
      if (request == upto) reached = true;
    }
    auto event = std::make_shared<Event>(device_);
    CudaDeviceGuard guard(device_);
    follow_default_stream();
    BRAID_NCCL_CHECK(ncclGroupStart());
    for (NcclRequest* r : group) {
      void* data = const_cast<void*>(r->data());
      if (r->is_recv()) {
        BRAID_NCCL_CHECK(
            ncclRecv(data, r->bytes(), ncclUint8, r->peer(), comm_.handle, stream_.handle));
      } else {
        BRAID_NCCL_CHECK(
            ncclSend(data, r->bytes(), ncclUint8, r->peer(), comm_.handle, stream_.handle));
      }
    }
    BRAID_NCCL_CHECK(ncclGroupEnd());
    BRAID_CUDA_CHECK(cudaEventRecord(event->handle, stream_.handle));
    for (NcclRequest* r : group) r->event = event;
    queued_ = std::move(rest);
  }

  // True once `event` passed; throws CommError when NCCL reported an asynchronous error.
  bool reached(const Event& event) {
    check_usable();
    const cudaError_t rc = cudaEventQuery(event.handle);
    if (rc == cudaSuccess) return true;
    if (rc != cudaErrorNotReady) cuda_check(rc, "cudaEventQuery");
    ncclResult_t async = ncclSuccess;
    BRAID_NCCL_CHECK(ncclCommGetAsyncError(comm_.handle, &async));
    if (async != ncclSuccess && async != ncclInProgress) {
      fail(str_cat("NCCL reported ", ncclGetErrorString(async)));
      check_usable();
    }
    return false;
  }

  void forget(NcclRequest* request) {
    queued_.erase(std::remove(queued_.begin(), queued_.end(), request), queued_.end());
  }

  // Stops every NCCL kernel of this communicator: after a timeout or error nothing may write
  // into buffers that their owners are about to release. The transport is broken afterwards.
  void fail(const std::string& why) noexcept {
    if (failure_.empty()) failure_ = why;
    if (comm_.aborted || !comm_.handle) return;
    comm_.aborted = true;
    ncclCommAbort(comm_.handle);
    cudaStreamSynchronize(stream_.handle);
    cudaGetLastError();
  }

 private:
  // Rank 0's ncclUniqueId on every rank, polled against the deadline. A broadcast cannot be
  // cancelled, so after a timeout its buffer is left to MPI (a few bytes, once, on a failing run).
  ncclUniqueId broadcast_id(Clock::time_point deadline) {
    const auto start = Clock::now();
    auto id = std::make_unique<ncclUniqueId>();
    if (host_->rank() == 0) BRAID_NCCL_CHECK(ncclGetUniqueId(id.get()));
    MPI_Request request;
    BRAID_MPI_CHECK(
        MPI_Ibcast(id.get(), sizeof(ncclUniqueId), MPI_BYTE, 0, host_->comm(), &request));
    if (!mpi_test_until(request, deadline)) {
      id.release();  // MPI may still write into it
      throw TimeoutError(str_cat(
          "setting up NCCL: the ncclUniqueId broadcast from rank 0 did not "
          "complete after ",
          seconds_since(start), " s (rank ", host_->rank(), " of ", host_->size(), " waited)"));
    }
    return *id;
  }

  // ncclCommInitRank blocks until every rank has joined, with no deadline of its own. It runs on
  // a helper thread that this one waits for against the deadline; after a timeout the thread is
  // left behind, blocked in NCCL, with the state it shares (the process is ending with the
  // TimeoutError). Why not a non-blocking communicator (ncclConfig_t::blocking = 0): every later
  // NCCL call on it could return ncclInProgress and would need its own polling before the event
  // that test() waits for may be recorded.
  ncclComm_t init_nccl(const ncclUniqueId& id, Clock::time_point deadline) {
    struct Init {
      std::atomic<bool> done{false};
      ncclComm_t comm = nullptr;
      ncclResult_t rc = ncclSuccess;
    };
    auto init = std::make_shared<Init>();
    const auto start = Clock::now();
    std::thread([init, id, device = device_, ranks = host_->size(), rank = host_->rank()] {
      if (cudaSetDevice(device) == cudaSuccess) {
        init->rc = ncclCommInitRank(&init->comm, ranks, id, rank);
      } else {
        init->rc = ncclUnhandledCudaError;
      }
      init->done.store(true, std::memory_order_release);
    }).detach();
    const bool done =
        poll_until([&] { return init->done.load(std::memory_order_acquire); }, deadline, nullptr);
    if (!done) {
      throw TimeoutError(str_cat("setting up NCCL: ncclCommInitRank did not complete after ",
                                 seconds_since(start), " s (rank ", host_->rank(), " of ",
                                 host_->size(),
                                 " waited; a rank stalled or NCCL could not "
                                 "connect, NCCL_DEBUG=INFO shows which)"));
    }
    nccl_check(init->rc, "ncclCommInitRank");
    return init->comm;
  }

  RequestPtr post(const void* data, std::size_t bytes, int peer, int tag, bool is_recv) {
    BRAID_CHECK(peer >= 0 && peer < size(), is_recv ? "receive from" : "send to", " rank ", peer,
                " of ", size());
    if (bytes == 0 || !is_device_memory(data)) {
      return is_recv ? host_->irecv(const_cast<void*>(data), bytes, peer, tag)
                     : host_->isend(data, bytes, peer, tag);
    }
    check_usable();
    auto request = std::make_unique<NcclRequest>(this, data, bytes, peer, tag, is_recv);
    queued_.push_back(request.get());
    return request;
  }

  void check_device(const Buffer& buffer, const char* call) const {
    if (!buffer.device.is_cuda()) {
      throw CommError(str_cat(call, " needs CUDA buffers; got one on ", buffer.device.str()));
    }
  }

  void check_usable() const {
    if (!failure_.empty()) {
      throw CommError(str_cat("the NCCL communicator was aborted earlier: ", failure_));
    }
  }

  // The buffers were last written on the legacy default stream (LibTorch's default: the
  // backward pass) or on this thread's stream (braid's reduce kernels, synchronised already);
  // our stream is non-blocking, so it waits for the default stream's work queued so far without
  // blocking the host.
  void follow_default_stream() {
    Event ready(device_);
    BRAID_CUDA_CHECK(cudaEventRecord(ready.handle, cudaStreamLegacy));
    BRAID_CUDA_CHECK(cudaStreamWaitEvent(stream_.handle, ready.handle, 0));
  }

  template <typename Launch>
  bool run_native(const char* call, Clock::time_point deadline, const std::atomic<bool>* stop,
                  Launch launch_call) {
    check_usable();
    CudaDeviceGuard guard(device_);
    Event event(device_);
    follow_default_stream();
    launch_call();
    BRAID_CUDA_CHECK(cudaEventRecord(event.handle, stream_.handle));
    bool done = false;
    try {
      done = poll_until([&] { return reached(event); }, deadline, stop);
    } catch (...) {
      fail(str_cat(call, " failed"));
      throw;
    }
    if (!done) fail(str_cat(call, " did not complete before its deadline"));
    return done;
  }

  std::shared_ptr<Transport> make_child(std::shared_ptr<Transport> host,
                                        Clock::time_point deadline) {
    auto mpi = std::dynamic_pointer_cast<MpiTransport>(host);
    BRAID_CHECK(mpi, "the NCCL transport's host transport is not MPI");
    return std::make_shared<NcclTransport>(std::move(mpi), device_, setup_timeout_, deadline);
  }

  std::shared_ptr<MpiTransport> host_;
  int device_;
  Clock::duration setup_timeout_;  // for children made by split(), which has no deadline
  Stream stream_;                  // before comm_: the communicator is destroyed (or aborted) first
  NcclComm comm_;
  std::vector<NcclRequest*> queued_;  // posted, not launched yet
  std::string failure_;
};

NcclRequest::~NcclRequest() {
  if (done_) return;
  if (!event) {
    owner_->forget(this);  // never launched: nothing to stop
    return;
  }
  if (cudaEventQuery(event->handle) != cudaSuccess) {
    owner_->fail(str_cat(is_recv() ? "receive from" : "send to", " rank ", peer(),
                         " was abandoned before it completed (timeout or error)"));
  }
}

bool NcclRequest::test() {
  if (done_) return true;
  if (!event) owner_->launch(this);
  if (!owner_->reached(*event)) return false;
  done_ = true;
  owner_->count(*this);
  return true;
}

}  // namespace

std::shared_ptr<Transport> make_nccl_transport(MPI_Comm comm, int device,
                                               Clock::duration setup_timeout) {
  BRAID_CHECK(device >= 0, "CUDA device ", device);
  auto host = std::make_shared<MpiTransport>(comm, 0, setup_timeout);
  return std::make_shared<NcclTransport>(std::move(host), device, setup_timeout,
                                         Clock::now() + setup_timeout);
}

DeviceCollectives* device_collectives(Transport& transport) {
  auto* nccl = dynamic_cast<NcclTransport*>(&transport);
  return nccl ? nccl->collectives() : nullptr;
}

}  // namespace braid
