#include "launch/bench_allreduce.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "collectives/communicator.h"
#include "collectives/device_ops.h"
#include "collectives/reduce.h"
#include "collectives/shared_memory.h"
#include "collectives/verify.h"
#include "common/error.h"
#include "runtime/cost_model_file.h"
#include "runtime/world.h"

namespace braid {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Largest value over ranks (time: the slowest rank defines the collective's time).
double max_over_ranks(Communicator& comm, double value) {
  comm.allreduce(Buffer{&value, 1, DType::kFloat64}, ReduceOp::kMax, "rhd").wait();
  return value;
}

std::int64_t sum_over_ranks(Communicator& comm, std::int64_t value) {
  comm.allreduce(Buffer{&value, 1, DType::kInt64}, ReduceOp::kSum, "rhd").wait();
  return value;
}

// Seconds per allreduce of `buffer` with `name`: at least `iters` iterations and `min_time_ms`
// (small messages repeat until the measurement is long enough to be stable), as the slowest
// rank saw it. The buffer is zeroed first so repeated sums stay finite.
double time_allreduce(Communicator& comm, Buffer buffer, ReduceOp op, const std::string& name,
                      const BenchAllreduceOptions& options) {
  std::memset(buffer.data, 0, buffer.bytes());
  for (int i = 0; i < options.warmup; ++i) comm.allreduce(buffer, op, name).wait();
  for (std::int64_t iters = options.iters;; iters *= 2) {
    comm.barrier().wait();
    auto start = std::chrono::steady_clock::now();
    for (std::int64_t i = 0; i < iters; ++i) comm.allreduce(buffer, op, name).wait();
    const double elapsed = max_over_ranks(comm, seconds_since(start));
    if (elapsed * 1e3 >= options.min_time_ms || iters >= (1 << 20)) return elapsed / iters;
  }
}

// Every row size of the sweep, in bytes rounded down to whole elements.
std::vector<std::size_t> sweep_sizes(const BenchAllreduceOptions& options, std::size_t elem) {
  std::vector<std::size_t> sizes;
  for (double size = static_cast<double>(options.min_bytes);
       size <= static_cast<double>(options.max_bytes) * 1.0000001; size *= options.factor) {
    sizes.push_back(static_cast<std::size_t>(size) / elem * elem);
  }
  return sizes;
}

// Fits T(S) = alpha + S * beta to ping-pong times between ranks 0 and 1 and gamma to a local
// reduction, then times ring, star, rhd and native at every sweep size to record the measured
// winners for this rank count, and writes the cost model that `auto` reads through
// --cost-model (or sync.cost_model).
void calibrate(Communicator& comm, const BenchAllreduceOptions& options) {
  const std::string& path = options.calibrate;
  std::vector<char> memory(std::size_t{4} << 20);
  std::vector<double> pingpong_bytes, times;
  for (std::size_t bytes = 8; bytes <= memory.size(); bytes *= 4) {
    const int rounds = bytes < (64u << 10) ? 200 : 20;
    double elapsed = 0;
    comm.submit({"calibrate", "pingpong", static_cast<std::int64_t>(bytes), DType::kFloat32},
                [&](OpContext& ctx) {
                  auto start = std::chrono::steady_clock::now();
                  for (int i = 0; i < rounds && ctx.rank() < 2; ++i) {
                    int peer = 1 - ctx.rank();
                    if (ctx.rank() == 0) {
                      auto s = ctx.send(memory.data(), bytes, peer);
                      ctx.wait(*s);
                      auto r = ctx.recv(memory.data(), bytes, peer);
                      ctx.wait(*r);
                    } else {
                      auto r = ctx.recv(memory.data(), bytes, peer);
                      ctx.wait(*r);
                      auto s = ctx.send(memory.data(), bytes, peer);
                      ctx.wait(*s);
                    }
                  }
                  elapsed = seconds_since(start) / (2.0 * rounds);
                })
        .wait();
    pingpong_bytes.push_back(static_cast<double>(bytes));
    times.push_back(elapsed);
  }
  // Least squares on the rank-0 measurements.
  const double n = static_cast<double>(pingpong_bytes.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < pingpong_bytes.size(); ++i) {
    sx += pingpong_bytes[i];
    sy += times[i];
    sxx += pingpong_bytes[i] * pingpong_bytes[i];
    sxy += pingpong_bytes[i] * times[i];
  }
  CostModel model;
  model.beta_s_per_byte = std::max(1e-12, (n * sxy - sx * sy) / (n * sxx - sx * sx));
  model.alpha_s = std::max(1e-7, (sy - model.beta_s_per_byte * sx) / n);
  std::vector<float> a(std::size_t{4} << 20, 1.0f), b(a.size(), 2.0f);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i)
    reduce_into(Buffer{a.data(), static_cast<std::int64_t>(a.size())}, b.data(), ReduceOp::kSum);
  model.gamma_s_per_byte = seconds_since(start) / (10.0 * a.size() * sizeof(float));
  // Every rank must use the same gamma for the formulas to pick alike.
  model.gamma_s_per_byte = max_over_ranks(comm, model.gamma_s_per_byte);
  double alpha_beta[2] = {model.alpha_s, model.beta_s_per_byte};
  comm.broadcast(Buffer{alpha_beta, 2, DType::kFloat64}, 0).wait();
  model.alpha_s = alpha_beta[0];
  model.beta_s_per_byte = alpha_beta[1];

  const std::vector<std::size_t> sizes = sweep_sizes(options, sizeof(float));
  std::vector<char> buffer_memory(sizes.empty() ? 0 : sizes.back());
  model.measured_ranks = comm.size();
  for (std::size_t bytes : sizes) {
    Buffer buffer{buffer_memory.data(), static_cast<std::int64_t>(bytes / sizeof(float))};
    std::string best;
    double best_time = 1e300;
    for (const char* name : {"ring", "star", "rhd", "native"}) {
      double t = time_allreduce(comm, buffer, ReduceOp::kSum, name, options);
      if (t < best_time) {
        best_time = t;
        best = name;
      }
    }
    model.measured_bytes.push_back(bytes);
    model.measured_best.push_back(best);
    if (comm.rank() == 0)
      fmt::print("# {:>12} bytes: {} fastest ({:.1f} us)\n", bytes, best, best_time * 1e6);
  }
  if (comm.rank() == 0) {
    save_cost_model(model, path);
    fmt::print(
        "# cost model written to {}: alpha {:.3g} s, beta {:.3g} s/B ({:.2f} GB/s), "
        "gamma {:.3g} s/B\n",
        path, model.alpha_s, model.beta_s_per_byte, 1e-9 / model.beta_s_per_byte,
        model.gamma_s_per_byte);
  }
}

// The communicator's shared memory (nullptr: none); asking never communicates.
SharedMemory* shared_memory_of(Communicator& comm) { return comm.transport().shared_memory(); }

// Memory of `bytes` for the buffer: in the node's shared memory when registered (and there is
// a node peer to share with), else our own.
char* allocate_buffer(Communicator& comm, std::size_t bytes, bool registered,
                      std::vector<char>& own) {
  if (void* shared = registered ? comm.allocate_shared(bytes) : nullptr) {
    return static_cast<char*>(shared);
  }
  own.resize(bytes);
  return own.data();
}

// All ranks at once: a[i] += b[i] over max_bytes of float32 (read a, read b, write a); prints
// the ranks' total bandwidth, the limit that shared-memory reduction approaches.
void stream(Communicator& comm, const BenchAllreduceOptions& options) {
  const auto n = static_cast<std::int64_t>(options.max_bytes / sizeof(float));
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  Buffer dst{a.data(), n, DType::kFloat32};
  for (int i = 0; i < std::max(options.warmup, 1); ++i) reduce_into(dst, b.data(), ReduceOp::kSum);
  double best = 1e300;
  for (int round = 0; round < 5; ++round) {
    comm.barrier().wait();
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < options.iters; ++i) reduce_into(dst, b.data(), ReduceOp::kSum);
    best = std::min(best, max_over_ranks(comm, seconds_since(start)));
  }
  const double gbps = 3.0 * n * sizeof(float) * options.iters * comm.size() / best / 1e9;
  if (comm.rank() != 0) return;
  if (options.json) {
    fmt::print("{{\"stream\":\"reduce\",\"ranks\":{},\"bytes\":{},\"gbps\":{:.3f}}}\n", comm.size(),
               n * sizeof(float), gbps);
  } else {
    fmt::print("# stream reduce a[i] += b[i], {} ranks x {} bytes: {:.2f} GB/s\n", comm.size(),
               n * sizeof(float), gbps);
  }
}

// "all" without the algorithms the layout cannot run.
std::vector<std::string> runnable(Communicator& comm, std::vector<std::string> names) {
  const SharedMemory* shm = comm.size() > 1 ? shared_memory_of(comm) : nullptr;
  const bool one_node = shm && shm->layout().nodes == 1;
  const bool uniform = shm && shm->layout().uniform;
  names.erase(std::remove_if(names.begin(), names.end(),
                             [&](const std::string& name) {
                               return (name == "shm" && comm.size() > 1 && !one_node) ||
                                      (name == "hierarchical" && comm.size() > 1 && !uniform);
                             }),
              names.end());
  return names;
}

}  // namespace

int bench_allreduce(const World& world, const BenchAllreduceOptions& options) {
  const DType dtype = parse_dtype(options.dtype);
  const ReduceOp op = parse_reduce_op(options.op);
  std::vector<std::string> algorithms;
  if (options.algorithm == "all") {
    algorithms = allreduce_names();
  } else {
    make_allreduce(options.algorithm);  // validates the name
    algorithms = {options.algorithm};
  }
  if (options.min_bytes > options.max_bytes || options.iters < 1 || options.warmup < 0 ||
      options.factor <= 1.0) {
    throw ConfigError("bench: need min-bytes <= max-bytes, iters >= 1, warmup >= 0, factor > 1");
  }

  CommOptions comm_options;
  comm_options.timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(options.timeout_s * 1000));
  comm_options.debug_checks = options.debug_checks;
  if (!options.cost_model.empty()) {
    comm_options.allreduce.cost_model = load_cost_model(options.cost_model);
  }
  Device device;
  if (options.device == "cuda") {
    const int gpus = cuda_device_count();
    if (gpus == 0) {
      throw ConfigError(cuda_built() ? "bench: --device cuda, but no GPU is visible"
                                     : "bench: --device cuda needs a CUDA build of braid "
                                       "(-DBRAID_CUDA=ON)");
    }
    device = Device{Device::kCuda, world.local_rank() % gpus};
  } else if (options.device != "cpu") {
    throw ConfigError(str_cat("bench: unknown --device '", options.device, "' (valid: cpu, cuda)"));
  }
  Communicator comm(world.make_transport(device, options.ranks_per_node), comm_options);
  if (options.stream) {
    stream(comm, options);
    return 0;
  }
  if (options.algorithm == "all") algorithms = runnable(comm, algorithms);
  if (!options.calibrate.empty()) {
    if (comm.size() < 2) throw ConfigError("bench: --calibrate needs at least 2 ranks");
    calibrate(comm, options);
    return 0;
  }
  const int P = comm.size();
  const bool root = comm.rank() == 0;
  const std::size_t elem = dtype_size(dtype);
  std::vector<char> own;
  char* memory = allocate_buffer(comm, std::max(options.max_bytes, elem), options.registered, own);
  // With --device cuda the sweep runs on `on_device`; `memory` stages the --check pattern.
  DeviceMemory on_device;
  if (device.is_cuda()) on_device = DeviceMemory(std::max(options.max_bytes, elem), device);
  char* data = device.is_cuda() ? static_cast<char*>(on_device.data()) : memory;

  if (root && !options.json) {
    fmt::print(
        "# braid bench allreduce: {} ranks, op {}, >= {} iterations and >= {} ms per row ({} "
        "warmup){}\n",
        P, options.op, options.iters, options.min_time_ms, options.warmup,
        options.check ? ", checked" : "");
    fmt::print("#{:>12} {:>12} {:>9} {:>10} {:>11} {:>11} {:>11} {:>7}\n", "size(B)", "count",
               "type", "algorithm", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "#wrong");
  }
  // Warm every algorithm's connections and scratch so the first row is not an outlier.
  for (const std::string& name : algorithms) {
    for (int i = 0; i < 20; ++i) comm.allreduce(Buffer{data, 256, dtype, device}, op, name).wait();
  }
  std::int64_t total_wrong = 0;
  for (std::size_t bytes : sweep_sizes(options, elem)) {
    const auto count = static_cast<std::int64_t>(bytes / elem);
    Buffer buffer{data, count, dtype, device};
    const Buffer host{memory, count, dtype};
    for (const std::string& name : algorithms) {
      std::int64_t wrong = 0;
      if (options.check) {
        fill_pattern(host, comm.rank());
        copy_bytes(buffer.data, device, host.data, Device{}, host.bytes());
        comm.allreduce(buffer, op, name).wait();
        copy_bytes(host.data, Device{}, buffer.data, device, host.bytes());
        wrong = sum_over_ranks(comm, count_wrong(host, op, P));
        total_wrong += wrong;
      }
      const double seconds = time_allreduce(comm, buffer, op, name, options);
      const double algbw = seconds > 0 ? bytes / seconds / 1e9 : 0;
      const double busbw = algbw * 2.0 * (P - 1) / P;
      const std::string chosen = comm.resolve(name, bytes);
      if (!root) continue;
      if (options.json) {
        fmt::print(
            "{{\"algorithm\":\"{}\",\"chosen\":\"{}\",\"dtype\":\"{}\",\"op\":\"{}\","
            "\"ranks\":{},\"bytes\":{},\"count\":{},\"time_us\":{:.3f},"
            "\"algbw_gbps\":{:.4f},\"busbw_gbps\":{:.4f},\"wrong\":{}}}\n",
            name, chosen, options.dtype, options.op, P, bytes, count, seconds * 1e6, algbw, busbw,
            options.check ? std::to_string(wrong) : "null");
      } else {
        std::string label = name == "auto" ? "auto:" + chosen : name;
        fmt::print(" {:>12} {:>12} {:>9} {:>10} {:>11.1f} {:>11.3f} {:>11.3f} {:>7}\n", bytes,
                   count, options.dtype, label, seconds * 1e6, algbw, busbw,
                   options.check ? std::to_string(wrong) : "N/A");
      }
      std::fflush(stdout);
    }
  }
  if (options.check && root && !options.json) {
    fmt::print("# {} wrong elements in total\n", total_wrong);
  }
  return total_wrong == 0 ? 0 : 1;
}

}  // namespace braid
