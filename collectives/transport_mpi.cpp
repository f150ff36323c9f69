#include "collectives/transport_mpi.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "collectives/mpi_receives.h"
#include "collectives/reduce.h"
#include "collectives/shared_memory_mpi.h"
#include "common/error.h"

namespace braid {

namespace {

constexpr std::size_t kMaxMessage = std::size_t{1} << 30;
// Transport::dup's arrival check (tags below 16 are reserved for set-up; the Communicator uses 1).
constexpr int kSetupTag = 2;
// How long a destructor waits for MPI to let go of memory before abandoning it (error paths only).
constexpr auto kSettleGrace = std::chrono::seconds(1);

std::string mpi_error_string(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) return str_cat("MPI error ", rc);
  return std::string(text, len);
}

// A send, as one or more MPI messages (MPI counts are int).
class MpiSend : public Request {
 public:
  // `stuck`: the transport's flag that a send has already been abandoned; set once, later
  // destructors do not wait again (the communicator is broken; each waiting a full grace would
  // add up to seconds for a pipeline of many segments).
  MpiSend(Transport* owner, MpiReceives* receives, int peer, int tag, std::size_t bytes,
          bool* stuck)
      : Request(peer, tag, bytes, /*is_recv=*/false),
        owner_(owner),
        receives_(receives),
        stuck_(stuck) {}

  // Reached with active requests only after an error or timeout (or an abort). Sends cannot be
  // relied on to cancel (OpenMPI ignores MPI_Cancel on sends; MPI 4 deprecates it) and waiting
  // for a peer that may never receive would hang, so the request is freed. MPI only reads a send
  // buffer, and only if the peer matches the message later: a peer of a broken communicator, in
  // a job that is ending (the runtime ends every rank after a CommError). Freeing the buffer
  // early can at worst send stale bytes to that peer; it is never written.
  ~MpiSend() override {
    for (auto& request : requests_) {
      if (request == MPI_REQUEST_NULL) continue;
      if (settle(request, *stuck_ ? Clock::duration::zero() : kSettleGrace)) continue;
      *stuck_ = true;
      MPI_Request_free(&request);
    }
  }

  void add(MPI_Request request) { requests_.push_back(request); }

  bool test() override {
    if (done_) return true;
    // A large send completes only once the peer matched it, and the peer matches only while it
    // polls (MpiReceives): so does this rank, here, or two ranks each waiting on a send to the
    // other before posting the next receive (ring's allgather) would wait for ever.
    receives_->match();
    int flag = 0;
    std::vector<MPI_Status> statuses(requests_.size());
    int rc =
        MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &flag, statuses.data());
    if (rc == MPI_ERR_IN_STATUS) {
      for (auto& status : statuses) {
        if (status.MPI_ERROR != MPI_SUCCESS) rc = status.MPI_ERROR;
      }
    }
    if (rc != MPI_SUCCESS) {
      throw CommError(str_cat("send to rank ", peer(), " failed: ", mpi_error_string(rc)));
    }
    if (!flag) return false;
    done_ = true;
    owner_->count(*this);
    return true;
  }

 private:
  Transport* owner_;
  MpiReceives* receives_;
  bool* stuck_;
  std::vector<MPI_Request> requests_;
  bool done_ = false;
};

// RAII owners of MPI handles.
struct MpiType {
  MPI_Datatype handle = MPI_DATATYPE_NULL;
  ~MpiType() {
    if (handle != MPI_DATATYPE_NULL) MPI_Type_free(&handle);
  }
};
struct MpiOp {
  MPI_Op handle = MPI_OP_NULL;
  ~MpiOp() {
    if (handle != MPI_OP_NULL) MPI_Op_free(&handle);
  }
};

// MPI has no 16-bit float types: pass them as 2-byte opaque elements with user-defined ops that
// reduce through braid's kernels (float32 arithmetic).
template <DType D, ReduceOp Op>
void half_op(void* in, void* inout, int* len, MPI_Datatype*) {
  reduce_into(Buffer{inout, *len, D}, in, Op);
}

template <DType D, ReduceOp Op>
void create_op(MpiOp& op) {
  BRAID_MPI_CHECK(MPI_Op_create(&half_op<D, Op>, /*commute=*/1, &op.handle));
}

struct HalfTypes {
  MpiType half;
  MpiOp ops[2][3];  // [float16, bfloat16][sum, max, min]

  HalfTypes() {
    BRAID_MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &half.handle));
    BRAID_MPI_CHECK(MPI_Type_commit(&half.handle));
    create_op<DType::kFloat16, ReduceOp::kSum>(ops[0][0]);
    create_op<DType::kFloat16, ReduceOp::kMax>(ops[0][1]);
    create_op<DType::kFloat16, ReduceOp::kMin>(ops[0][2]);
    create_op<DType::kBFloat16, ReduceOp::kSum>(ops[1][0]);
    create_op<DType::kBFloat16, ReduceOp::kMax>(ops[1][1]);
    create_op<DType::kBFloat16, ReduceOp::kMin>(ops[1][2]);
  }
};

int delete_half_types(MPI_Comm, int, void* attribute, void*) {
  delete static_cast<HalfTypes*>(attribute);
  return MPI_SUCCESS;
}

// Created on first use and shared by every transport of the process. MPI handles must be freed
// before MPI_Finalize, which a static destructor would run after, so the object hangs on an
// attribute of MPI_COMM_SELF: MPI_Finalize deletes those attributes first, calling
// delete_half_types while MPI is still usable.
const HalfTypes& half_types() {
  static const HalfTypes* types = [] {
    auto owned = std::make_unique<HalfTypes>();
    int keyval = MPI_KEYVAL_INVALID;
    BRAID_MPI_CHECK(
        MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, &delete_half_types, &keyval, nullptr));
    BRAID_MPI_CHECK(MPI_Comm_set_attr(MPI_COMM_SELF, keyval, owned.get()));
    BRAID_MPI_CHECK(MPI_Comm_free_keyval(&keyval));  // freed for real with the attribute
    return owned.release();
  }();
  return *types;
}

int op_index(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return 0;
    case ReduceOp::kMax:
      return 1;
    case ReduceOp::kMin:
      return 2;
  }
  return 0;
}

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return MPI_FLOAT;
    case DType::kFloat64:
      return MPI_DOUBLE;
    case DType::kInt32:
      return MPI_INT32_T;
    case DType::kInt64:
      return MPI_INT64_T;
    case DType::kUInt8:
      return MPI_UINT8_T;
    case DType::kFloat16:
    case DType::kBFloat16:
      break;
  }
  return half_types().half.handle;
}

MPI_Op mpi_op(DType dtype, ReduceOp op) {
  if (dtype == DType::kFloat16 || dtype == DType::kBFloat16) {
    return half_types().ops[dtype == DType::kBFloat16][op_index(op)].handle;
  }
  const MPI_Op ops[] = {MPI_SUM, MPI_MAX, MPI_MIN};
  return ops[op_index(op)];
}

}  // namespace

void mpi_check(int rc, const char* call) {
  if (rc != MPI_SUCCESS) throw CommError(str_cat(call, " failed: ", mpi_error_string(rc)));
}

MpiComm& MpiComm::operator=(MpiComm&& other) noexcept {
  if (this != &other) {
    reset();
    comm_ = other.comm_;
    other.comm_ = MPI_COMM_NULL;
  }
  return *this;
}

MPI_Comm* MpiComm::out() {
  reset();
  return &comm_;
}

void MpiComm::reset() {
  if (comm_ == MPI_COMM_NULL) return;
  int finalized = 0;
  if (MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Comm_free(&comm_);
  comm_ = MPI_COMM_NULL;
}

bool mpi_test_until(MPI_Request& request, Clock::time_point deadline,
                    const std::atomic<bool>* stop) {
  return poll_until(
      [&] {
        int flag = 0;
        BRAID_MPI_CHECK(MPI_Test(&request, &flag, MPI_STATUS_IGNORE));
        return flag != 0;
      },
      deadline, stop);
}

void await_arrival(MPI_Comm comm, int tag, const char* step, Clock::time_point deadline) {
  int rank = 0, size = 1;
  BRAID_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  BRAID_MPI_CHECK(MPI_Comm_size(comm, &size));
  if (size == 1) return;
  const auto start = Clock::now();
  // Zero-byte messages: every rank learns exactly who has arrived, so a timeout names them.
  std::vector<MPI_Request> sends, recvs(size, MPI_REQUEST_NULL);
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    BRAID_MPI_CHECK(MPI_Irecv(nullptr, 0, MPI_BYTE, peer, tag, comm, &recvs[peer]));
    sends.emplace_back();
    BRAID_MPI_CHECK(MPI_Isend(nullptr, 0, MPI_BYTE, peer, tag, comm, &sends.back()));
  }
  const bool all = poll_until(
      [&] {
        int flag = 0;
        BRAID_MPI_CHECK(MPI_Testall(size, recvs.data(), &flag, MPI_STATUSES_IGNORE));
        return flag != 0;
      },
      deadline, nullptr);
  if (all) {
    // Zero-byte sends complete locally (eager) once posted; wait for them to release them.
    BRAID_MPI_CHECK(MPI_Waitall(static_cast<int>(sends.size()), sends.data(), MPI_STATUSES_IGNORE));
    return;
  }
  std::vector<std::string> missing;
  for (int peer = 0; peer < size; ++peer) {
    if (recvs[peer] == MPI_REQUEST_NULL) continue;
    int arrived = 0;  // MPI_Testall completes none unless it completes all
    BRAID_MPI_CHECK(MPI_Test(&recvs[peer], &arrived, MPI_STATUS_IGNORE));
    if (arrived) continue;
    missing.push_back(std::to_string(peer));
    MPI_Cancel(&recvs[peer]);  // unmatched zero-byte receive: completes locally
    MPI_Wait(&recvs[peer], MPI_STATUS_IGNORE);
  }
  for (MPI_Request& send : sends) {
    if (send != MPI_REQUEST_NULL) MPI_Request_free(&send);  // to a rank that never came
  }
  throw TimeoutError(str_cat(step, ": rank", missing.size() > 1 ? "s " : " ", join(missing), " of ",
                             size, " had not arrived after ",
                             std::chrono::duration<double>(Clock::now() - start).count(),
                             " s (rank ", rank, " waited)"));
}

MpiTransport::MpiTransport(MPI_Comm comm, int ranks_per_node, Clock::duration setup_timeout) {
  BRAID_CHECK(ranks_per_node >= 0, "ranks per node ", ranks_per_node);
  // The caller's communicator and tag space: a barrier, which matches no message of theirs.
  MPI_Request arrived;
  BRAID_MPI_CHECK(MPI_Ibarrier(comm, &arrived));
  const bool all = mpi_test_until(arrived, Clock::now() + setup_timeout);
  int size = 1;
  BRAID_MPI_CHECK(MPI_Comm_size(comm, &size));
  if (!all) {
    throw TimeoutError(str_cat("creating the MPI transport: not every one of the ", size,
                               " ranks arrived within ",
                               std::chrono::duration<double>(setup_timeout).count(), " s"));
  }
  BRAID_MPI_CHECK(MPI_Comm_dup(comm, comm_.out()));
  int rank = 0;
  BRAID_MPI_CHECK(MPI_Comm_rank(comm_.get(), &rank));
  if (ranks_per_node > 0) node_key_ = rank / ranks_per_node;
  init();
}

MpiTransport::MpiTransport(MpiComm comm, int node_key, Adopt)
    : comm_(std::move(comm)), node_key_(node_key) {
  init();
}

SharedMemory* MpiTransport::shared_memory() { return shared_memory_.get(); }

void MpiTransport::init() {
  BRAID_MPI_CHECK(MPI_Comm_set_errhandler(comm_.get(), MPI_ERRORS_RETURN));
  BRAID_MPI_CHECK(MPI_Comm_rank(comm_.get(), &rank_));
  BRAID_MPI_CHECK(MPI_Comm_size(comm_.get(), &size_));
  // MPI_TAG_UB is defined on MPI_COMM_WORLD; look there if this communicator lacks it.
  for (MPI_Comm where : {comm_.get(), MPI_COMM_WORLD}) {
    void* value = nullptr;
    int flag = 0;
    BRAID_MPI_CHECK(MPI_Comm_get_attr(where, MPI_TAG_UB, &value, &flag));
    if (flag) {
      max_tag_ = *static_cast<int*>(value);
      break;
    }
  }
  init_counters(size_);
  receives_ = std::make_unique<MpiReceives>(comm_.get(), this);
  shared_memory_ = make_mpi_shared_memory(comm_.get(), node_key_);
}

MpiTransport::~MpiTransport() {
  int finalized = 0;
  if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;  // MPI has let go of all
  shared_memory_.reset();  // its windows live on a communicator split from comm_
  // MPI hands a freed communicator's context id to the next one created, and OpenMPI delivers
  // messages still in flight to the old one (a peer's abandoned send, queued unexpected ones)
  // to the new one, where they break its message order: the next communicator's set-up then
  // hangs. A failed communicator is therefore never freed; a job that saw one is ending.
  if (failed_ || sends_stuck_) comm_.leak();
  for (Abandoned& native : abandoned_) {
    // A native collective that timed out may complete once the late ranks joined. If it has not
    // by now, MPI may still write into its scratch, so that memory is deliberately leaked.
    if (!settle(native.request, kSettleGrace)) (void)native.scratch.release();
  }
}

RequestPtr MpiTransport::isend(const void* data, std::size_t bytes, int peer, int tag) {
  BRAID_CHECK(peer >= 0 && peer < size_, "send to rank ", peer, " of ", size_);
  auto request = std::make_unique<MpiSend>(this, receives_.get(), peer, tag, bytes, &sends_stuck_);
  char* p = static_cast<char*>(const_cast<void*>(data));
  std::size_t offset = 0;
  do {  // messages of at most kMaxMessage (MPI counts are int); MpiReceives splits alike
    const std::size_t part = std::min(kMaxMessage, bytes - offset);
    MPI_Request r;
    BRAID_MPI_CHECK(
        MPI_Isend(p + offset, static_cast<int>(part), MPI_BYTE, peer, tag, comm_.get(), &r));
    request->add(r);
    offset += part;
  } while (offset < bytes);
  return request;
}

RequestPtr MpiTransport::irecv(void* data, std::size_t bytes, int peer, int tag) {
  BRAID_CHECK(peer >= 0 && peer < size_, "receive from rank ", peer, " of ", size_);
  // Matched by probe, so a message of another size is reported, never written past `data`.
  return receives_->post(data, bytes, peer, tag, kMaxMessage);
}

std::shared_ptr<Transport> MpiTransport::split(int color, int key) {
  MpiComm child;
  BRAID_MPI_CHECK(MPI_Comm_split(comm_.get(), color, key, child.out()));
  return std::shared_ptr<Transport>(new MpiTransport(std::move(child), node_key_, Adopt{}));
}

std::shared_ptr<Transport> MpiTransport::dup(Clock::time_point deadline) {
  // One arrival check covers the duplicate and its shared-memory set-up (split_type, split and
  // two small collectives): after it every rank enters each of them.
  await_arrival(comm_.get(), kSetupTag,
                "duplicating the communicator (a new communicator or channel)", deadline);
  MpiComm child;
  BRAID_MPI_CHECK(MPI_Comm_dup(comm_.get(), child.out()));
  return std::shared_ptr<Transport>(new MpiTransport(std::move(child), node_key_, Adopt{}));
}

bool MpiTransport::allreduce(Buffer buffer, ReduceOp op, Clock::time_point deadline,
                             const std::atomic<bool>* stop) {
  const MPI_Datatype type = mpi_type(buffer.dtype);
  const MPI_Op reduce = mpi_op(buffer.dtype, op);
  // MPI_Iallreduce polled against the deadline, in a scratch copy: MPI forbids cancelling or
  // freeing a nonblocking collective, so after a timeout MPI may still write into its buffer
  // whenever the late ranks arrive. The caller's buffer must be the caller's again when this
  // returns, so MPI works on transport-owned memory that a timeout abandons (see ~MpiTransport),
  // and the result is copied back only on success.
  const std::size_t bytes = buffer.bytes();
  if (scratch_bytes_ < bytes) {
    scratch_.reset(new char[bytes]);
    scratch_bytes_ = bytes;
  }
  std::memcpy(scratch_.get(), buffer.data, bytes);
  Buffer work{scratch_.get(), buffer.count, buffer.dtype};
  constexpr std::int64_t kMaxCount = INT_MAX / 8;  // MPI counts are int
  for (std::int64_t offset = 0; offset < buffer.count; offset += kMaxCount) {
    const std::int64_t n = std::min(kMaxCount, buffer.count - offset);
    MPI_Request request;
    BRAID_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, work.bytes_at(offset), static_cast<int>(n), type,
                                   reduce, comm_.get(), &request));
    bool done = false;
    try {
      done = mpi_test_until(request, deadline, stop);
    } catch (...) {
      abandoned_.push_back({request, std::move(scratch_)});
      scratch_bytes_ = 0;
      throw;
    }
    if (!done) {
      abandoned_.push_back({request, std::move(scratch_)});
      scratch_bytes_ = 0;
      return false;
    }
  }
  std::memcpy(buffer.data, scratch_.get(), bytes);
  return true;
}

}  // namespace braid
