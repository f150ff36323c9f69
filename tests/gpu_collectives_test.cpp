// Tier 3 (GPU, under mpirun, one rank per GPU): every collective over the NCCL transport equals
// the same collective over MPI on CPU copies, and a stalled rank ends in the named TimeoutError.
// Exits 77 (CTest: skipped) without a GPU. Values are small integers in float32, so sums are
// exact on both paths and results compare bitwise.
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "collectives/communicator.h"
#include "collectives/device_ops.h"
#include "collectives/reduce.h"
#include "collectives/transport_mpi.h"
#include "collectives/transport_nccl.h"
#include "common/error.h"

namespace braid {
namespace {

int failures = 0;
#define EXPECT(cond, ...)                                                     \
  do {                                                                        \
    if (!(cond)) {                                                            \
      ++failures;                                                             \
      std::fprintf(stderr, "FAILED %s:%d %s %s\n", __FILE__, __LINE__, #cond, \
                   str_cat(__VA_ARGS__).c_str());                             \
    }                                                                         \
  } while (0)

// A CUDA copy of `host`, copied back by `read()`.
struct OnDevice {
  DeviceMemory memory;
  std::int64_t count;
  OnDevice(const std::vector<float>& host, Device d)
      : memory(host.size() * sizeof(float), d), count(static_cast<std::int64_t>(host.size())) {
    copy_bytes(memory.data(), d, host.data(), Device{}, host.size() * sizeof(float));
  }
  Buffer buffer() const { return {memory.data(), count, DType::kFloat32, memory.device()}; }
  std::vector<float> read() const {
    std::vector<float> out(count);
    copy_bytes(out.data(), Device{}, memory.data(), memory.device(), out.size() * sizeof(float));
    return out;
  }
};

std::vector<float> values(std::int64_t n, int rank) {
  std::vector<float> v(n);
  for (std::int64_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 7 + rank * 3) % 101);
  return v;
}

void compare_allreduce(Communicator& gpu, Communicator& cpu, Device d) {
  const int P = gpu.size();
  for (const std::string& algo : {"ring", "star", "rhd", "native"}) {
    for (std::int64_t n : {std::int64_t{0}, std::int64_t{1}, std::int64_t{P - 1},
                           std::int64_t{1000}, std::int64_t{(1 << 20) + 3}}) {
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kAvg}) {
        std::vector<float> host = values(n, gpu.rank());
        OnDevice dev(host, d);
        gpu.allreduce(dev.buffer(), op, algo).wait();
        cpu.allreduce(Buffer{host.data(), n, DType::kFloat32}, op, algo).wait();
        EXPECT(dev.read() == host, "allreduce ", algo, " n=", n, " op=", reduce_op_name(op));
      }
    }
  }
}

void compare_others(Communicator& gpu, Communicator& cpu, Device d) {
  const int P = gpu.size(), r = gpu.rank();
  const std::int64_t n = 4096 * P + 0;
  std::vector<float> host = values(n, r), out(n / P);
  OnDevice in(host, d), dev_out(std::vector<float>(n / P), d);
  gpu.reduce_scatter(in.buffer(), dev_out.buffer(), ReduceOp::kSum).wait();
  cpu.reduce_scatter(Buffer{host.data(), n, DType::kFloat32}, Buffer{out.data(), n / P},
                     ReduceOp::kSum)
      .wait();
  EXPECT(dev_out.read() == out, "reduce_scatter");

  std::vector<float> mine = values(333, r), all(333 * P);
  OnDevice dev_mine(mine, d), dev_all(all, d);
  gpu.allgather(dev_mine.buffer(), dev_all.buffer()).wait();
  cpu.allgather(Buffer{mine.data(), 333}, Buffer{all.data(), 333 * P}).wait();
  EXPECT(dev_all.read() == all, "allgather");

  std::vector<float> b = values(5000, r);
  OnDevice dev_b(b, d);
  gpu.broadcast(dev_b.buffer(), P - 1).wait();
  cpu.broadcast(Buffer{b.data(), 5000}, P - 1).wait();
  EXPECT(dev_b.read() == b, "broadcast");

  // NCCL's own collectives (the capabilities) against the same CPU results.
  DeviceCollectives* nccl = device_collectives(gpu.transport());
  EXPECT(nccl != nullptr, "the NCCL transport offers its collectives");
  if (!nccl) return;
  const auto later = Clock::now() + std::chrono::seconds(60);
  OnDevice in2(values(n, r), d), out2(std::vector<float>(n / P), d);
  EXPECT(nccl->reduce_scatter(in2.buffer(), out2.buffer(), ReduceOp::kSum, later, nullptr), "");
  EXPECT(out2.read() == out, "ncclReduceScatter");
  OnDevice all2(std::vector<float>(333 * P), d);
  EXPECT(nccl->allgather(dev_mine.buffer(), all2.buffer(), later, nullptr), "");
  EXPECT(all2.read() == all, "ncclAllGather");
  OnDevice b2(values(5000, r), d);
  EXPECT(nccl->broadcast(b2.buffer(), P - 1, later, nullptr), "");
  EXPECT(b2.read() == b, "ncclBroadcast");
}

// Bytes of n values of `dtype`, finite and inexact in sums (16-bit floats from bit patterns
// whose exponent stays below inf/NaN), different for each `seed`.
std::vector<std::uint8_t> pattern(DType dtype, std::int64_t n, int seed) {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(n) * dtype_size(dtype));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t k = (i * 7919 + seed * 104729) % 2001 - 1000;
    const auto bits =
        static_cast<std::uint16_t>(((i * 2654435761LL + seed) & 0x3FFF) | ((i & 1) << 15));
    void* at = bytes.data() + i * dtype_size(dtype);
    const float f = static_cast<float>(k) / 7.0f;
    const double g = static_cast<double>(k) / 7.0;
    const auto i32 = static_cast<std::int32_t>(k);
    switch (dtype) {
      case DType::kFloat32:
        std::memcpy(at, &f, 4);
        break;
      case DType::kFloat64:
        std::memcpy(at, &g, 8);
        break;
      case DType::kInt32:
        std::memcpy(at, &i32, 4);
        break;
      case DType::kInt64:
        std::memcpy(at, &k, 8);
        break;
      case DType::kFloat16:
      case DType::kBFloat16:
        std::memcpy(at, &bits, 2);
        break;
      case DType::kUInt8:
        break;
    }
  }
  return bytes;
}

// braid's own CUDA kernels (used by its algorithms from 2 ranks on, so a one-GPU run checks them
// here) equal the CPU kernels bitwise: both reduce 16-bit floats in float32 and round once, and
// divide truly for avg.
void device_kernels_match_cpu(Device d) {
  const std::int64_t n = (1 << 16) + 17;
  for (DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16,
                      DType::kInt32, DType::kInt64}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kAvg}) {
      std::vector<std::uint8_t> a = pattern(dtype, n, 1), b = pattern(dtype, n, 2), back(a.size());
      DeviceMemory da(a.size(), d), db(b.size(), d);
      copy_bytes(da.data(), d, a.data(), Device{}, a.size());
      copy_bytes(db.data(), d, b.data(), Device{}, b.size());
      reduce_into(Buffer{a.data(), n, dtype}, b.data(), op);
      reduce_into(Buffer{da.data(), n, dtype, d}, db.data(), op);
      if (op == ReduceOp::kAvg) {
        finish_avg(Buffer{a.data(), n, dtype}, 3);
        finish_avg(Buffer{da.data(), n, dtype, d}, 3);
      }
      copy_bytes(back.data(), Device{}, da.data(), d, back.size());
      EXPECT(back == a, "device kernel ", dtype_name(dtype), " ", reduce_op_name(op));
    }
  }
}

// The last rank never joins: the others end in the TimeoutError naming the operation.
void stalled_rank_times_out(Device d, int rank, int size) {
  CommOptions options;
  options.timeout = std::chrono::seconds(3);
  Communicator gpu(make_nccl_transport(MPI_COMM_WORLD, d.index), options);
  if (rank != size - 1) {
    OnDevice dev(values(1 << 16, rank), d);
    try {
      gpu.allreduce(dev.buffer(), ReduceOp::kSum, "ring").wait();
      EXPECT(false, "the allreduce with a stalled rank completed");
    } catch (const TimeoutError& e) {
      EXPECT(std::string(e.what()).find("allreduce") != std::string::npos, e.what());
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);  // the stalled rank leaves only after the others timed out
}

// The last rank never sets up the NCCL transport: the others end within the set-up deadline in
// a TimeoutError naming the step, not in a blocking MPI_Bcast or ncclCommInitRank. Over a
// duplicate of MPI_COMM_WORLD, whose abandoned arrival barrier no later collective can match.
void absent_rank_fails_setup(Device d, int rank, int size) {
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  if (rank != size - 1) {
    try {
      make_nccl_transport(comm, d.index, std::chrono::seconds(2));
      EXPECT(false, "the NCCL transport was set up without rank ", size - 1);
    } catch (const TimeoutError& e) {
      EXPECT(std::string(e.what()).find(std::to_string(size - 1)) != std::string::npos, e.what());
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);  // the absent rank leaves only after the others timed out
}

// One rank (a one-GPU machine): a receive from itself that no send matches never completes.
// The wait must end at its deadline without blocking, and abandoning the request must abort
// the communicator (the NCCL kernel stops), after which the transport refuses work by name.
void unmatched_receive_aborts(Device d) {
  auto transport = make_nccl_transport(MPI_COMM_WORLD, d.index);
  DeviceMemory memory(4096, d);
  RequestPtr recv = transport->irecv(memory.data(), 4096, 0, 0);
  const auto deadline = Clock::now() + std::chrono::seconds(3);
  EXPECT(!recv->wait_until(deadline), "an unmatched receive completed");
  EXPECT(Clock::now() >= deadline, "the wait returned before its deadline");
  recv.reset();  // abandoned: ncclCommAbort
  try {
    RequestPtr again = transport->isend(memory.data(), 4096, 0, 1);
    again->test();
    EXPECT(false, "an aborted NCCL transport accepted a send");
  } catch (const CommError& e) {
    EXPECT(std::string(e.what()).find("aborted") != std::string::npos, e.what());
  }
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  using namespace braid;
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 0, local = 0, on_node = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local);
  MPI_Comm_size(node, &on_node);
  MPI_Comm_free(&node);
  // One rank per GPU: NCCL refuses two ranks on one GPU ("Duplicate GPU detected").
  const int gpus = cuda_device_count();
  int skip = gpus < on_node ? 1 : 0, any_skip = 0;
  MPI_Allreduce(&skip, &any_skip, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any_skip) {
    if (rank == 0) {
      std::printf(
          "SKIPPED: gpu_collectives_test needs one GPU per rank: %d rank(s) on a node, %d GPU(s) "
          "visible\n",
          on_node, gpus);
    }
    MPI_Finalize();
    return 77;
  }
  const Device d{Device::kCuda, local};
  try {
    CommOptions options;
    options.timeout = std::chrono::seconds(60);
    Communicator gpu(make_nccl_transport(MPI_COMM_WORLD, d.index), options);
    Communicator cpu(std::make_shared<MpiTransport>(MPI_COMM_WORLD), options);
    device_kernels_match_cpu(d);
    compare_allreduce(gpu, cpu, d);
    compare_others(gpu, cpu, d);
  } catch (const std::exception& e) {
    ++failures;
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
  }
  try {
    if (argc > 1 && std::string(argv[1]) == "--stall") {
      if (size > 1) {
        stalled_rank_times_out(d, rank, size);
        absent_rank_fails_setup(d, rank, size);
      } else {
        unmatched_receive_aborts(d);
      }
    }
  } catch (const std::exception& e) {
    ++failures;
    std::fprintf(stderr, "rank %d (stall): %s\n", rank, e.what());
  }
  int all_failures = 0;
  MPI_Allreduce(&failures, &all_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) std::printf("gpu_collectives_test: %d failures\n", all_failures);
  MPI_Finalize();
  return all_failures == 0 ? 0 : 1;
}
