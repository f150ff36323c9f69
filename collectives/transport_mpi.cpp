#include "collectives/transport_mpi.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <vector>

#include "collectives/reduce.h"
#include "common/error.h"

namespace braid {

namespace {

constexpr std::size_t kMaxMessage = std::size_t{1} << 30;

std::string mpi_error_string(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) return str_cat("MPI error ", rc);
  return std::string(text, len);
}

class MpiRequest : public Request {
 public:
  MpiRequest(Transport* owner, int peer, int tag, std::size_t bytes, bool is_recv)
      : Request(peer, tag, bytes, is_recv), owner_(owner) {}

  ~MpiRequest() override {
    for (auto& request : requests_) {
      if (request == MPI_REQUEST_NULL) continue;
      // Only reached after an error or timeout: the job is failing and will not reuse the buffer.
      if (is_recv()) MPI_Cancel(&request);
      MPI_Request_free(&request);
    }
  }

  void add(MPI_Request request, std::size_t part_bytes) {
    requests_.push_back(request);
    parts_.push_back(part_bytes);
  }

  bool test() override {
    if (done_) return true;
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
      throw CommError(str_cat(is_recv() ? "receive from" : "send to", " rank ", peer(),
                              " failed: ", mpi_error_string(rc)));
    }
    if (!flag) return false;
    if (is_recv()) {
      for (std::size_t i = 0; i < statuses.size(); ++i) {
        int got = 0;
        MPI_Get_count(&statuses[i], MPI_BYTE, &got);
        if (static_cast<std::size_t>(got) != parts_[i]) {
          throw CommError(str_cat("message from rank ", peer(), " with tag ", tag(), " has ", got,
                                  " bytes, receiver expected ", parts_[i]));
        }
      }
    }
    done_ = true;
    owner_->count(*this);
    return true;
  }

 private:
  Transport* owner_;
  std::vector<MPI_Request> requests_;
  std::vector<std::size_t> parts_;
  bool done_ = false;
};

// MPI has no 16-bit float types: pass them as 2-byte opaque elements with user-defined ops that
// reduce through braid's kernels (float32 arithmetic).
template <DType D, ReduceOp Op>
void half_op(void* in, void* inout, int* len, MPI_Datatype*) {
  reduce_into(Buffer{inout, *len, D}, in, Op);
}

struct MpiTypes {
  MPI_Datatype half = MPI_DATATYPE_NULL;
  MPI_Op ops[2][3];  // [float16, bfloat16][sum, max, min]
};

const MpiTypes& mpi_types() {
  static MpiTypes types;
  static std::once_flag once;
  std::call_once(once, [] {
    MPI_Type_contiguous(2, MPI_BYTE, &types.half);
    MPI_Type_commit(&types.half);
    MPI_Op_create(&half_op<DType::kFloat16, ReduceOp::kSum>, 1, &types.ops[0][0]);
    MPI_Op_create(&half_op<DType::kFloat16, ReduceOp::kMax>, 1, &types.ops[0][1]);
    MPI_Op_create(&half_op<DType::kFloat16, ReduceOp::kMin>, 1, &types.ops[0][2]);
    MPI_Op_create(&half_op<DType::kBFloat16, ReduceOp::kSum>, 1, &types.ops[1][0]);
    MPI_Op_create(&half_op<DType::kBFloat16, ReduceOp::kMax>, 1, &types.ops[1][1]);
    MPI_Op_create(&half_op<DType::kBFloat16, ReduceOp::kMin>, 1, &types.ops[1][2]);
  });
  return types;
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

}  // namespace

void mpi_check(int rc, const char* call) {
  if (rc != MPI_SUCCESS) throw CommError(str_cat(call, " failed: ", mpi_error_string(rc)));
}

MpiTransport::MpiTransport(MPI_Comm comm) {
  BRAID_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
  BRAID_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  BRAID_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  BRAID_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  init_counters(size_);
}

MpiTransport::MpiTransport(MPI_Comm comm, Adopt) : comm_(comm) {
  BRAID_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  BRAID_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  BRAID_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  init_counters(size_);
}

MpiTransport::~MpiTransport() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
}

namespace {

// Posts `bytes` as messages of at most kMaxMessage (MPI counts are int), all in one request.
template <typename Post>
RequestPtr post_in_parts(std::unique_ptr<MpiRequest> request, char* data, std::size_t bytes,
                         Post post) {
  std::size_t offset = 0;
  do {
    std::size_t part = std::min(kMaxMessage, bytes - offset);
    MPI_Request r;
    post(data + offset, static_cast<int>(part), &r);
    request->add(r, part);
    offset += part;
  } while (offset < bytes);
  return request;
}

}  // namespace

RequestPtr MpiTransport::isend(const void* data, std::size_t bytes, int peer, int tag) {
  BRAID_CHECK(peer >= 0 && peer < size_, "send to rank ", peer, " of ", size_);
  return post_in_parts(std::make_unique<MpiRequest>(this, peer, tag, bytes, /*is_recv=*/false),
                       static_cast<char*>(const_cast<void*>(data)), bytes,
                       [&](char* p, int n, MPI_Request* r) {
                         BRAID_MPI_CHECK(MPI_Isend(p, n, MPI_BYTE, peer, tag, comm_, r));
                       });
}

RequestPtr MpiTransport::irecv(void* data, std::size_t bytes, int peer, int tag) {
  BRAID_CHECK(peer >= 0 && peer < size_, "receive from rank ", peer, " of ", size_);
  // A larger message than posted is MPI_ERR_TRUNCATE (reported by test()); a smaller one is
  // caught by the count check there.
  return post_in_parts(std::make_unique<MpiRequest>(this, peer, tag, bytes, /*is_recv=*/true),
                       static_cast<char*>(data), bytes, [&](char* p, int n, MPI_Request* r) {
                         BRAID_MPI_CHECK(MPI_Irecv(p, n, MPI_BYTE, peer, tag, comm_, r));
                       });
}

std::shared_ptr<Transport> MpiTransport::split(int color, int key) {
  MPI_Comm child;
  BRAID_MPI_CHECK(MPI_Comm_split(comm_, color, key, &child));
  return std::shared_ptr<Transport>(new MpiTransport(child, Adopt{}));
}

void MpiTransport::allreduce(Buffer buffer, ReduceOp op, Clock::time_point deadline) {
  MPI_Datatype type;
  MPI_Op mpi_op;
  const bool is_half = buffer.dtype == DType::kFloat16 || buffer.dtype == DType::kBFloat16;
  if (is_half) {
    type = mpi_types().half;
    mpi_op = mpi_types().ops[buffer.dtype == DType::kBFloat16][op_index(op)];
  } else {
    switch (buffer.dtype) {
      case DType::kFloat32:
        type = MPI_FLOAT;
        break;
      case DType::kFloat64:
        type = MPI_DOUBLE;
        break;
      case DType::kInt32:
        type = MPI_INT32_T;
        break;
      default:
        type = MPI_INT64_T;
        break;
    }
    const MPI_Op ops[] = {MPI_SUM, MPI_MAX, MPI_MIN};
    mpi_op = ops[op_index(op)];
  }
  // The blocking MPI_Allreduce, not MPI_Iallreduce: it is the tuned path users compare against
  // (OpenMPI's libnbc picks other algorithms). The price: no deadline inside the call; a
  // debug-mode cross-check before it still catches a peer that never arrives.
  (void)deadline;
  constexpr std::int64_t kMaxCount = INT_MAX / 8;
  for (std::int64_t offset = 0; offset < buffer.count; offset += kMaxCount) {
    std::int64_t n = std::min(kMaxCount, buffer.count - offset);
    BRAID_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buffer.bytes_at(offset), static_cast<int>(n), type,
                                  mpi_op, comm_));
  }
}

}  // namespace braid
