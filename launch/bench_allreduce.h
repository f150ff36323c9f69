// `braid bench allreduce`: an nccl-tests style size sweep of braid's allreduce algorithms and
// the MPI library's own (native), run under mpirun. Rank 0 prints one row per (size, algorithm):
// size, count, dtype, algorithm, time, algbw = bytes / time, busbw = algbw * 2(P-1)/P (the
// per-link rate a bandwidth-optimal algorithm needs, comparable across rank counts) and the
// number of wrong elements when --check is on. --device cuda runs the same sweep on GPU
// buffers over NCCL. --json prints one JSON object per row instead.
// --ranks-per-node N emulates nodes (for shm and hierarchical); "all" leaves out the algorithms
// that cannot run on the node layout (shm over several nodes, both without shared memory).
// --stream measures the STREAM-style limit instead: all ranks at once reduce a[i] += b[i].
#pragma once

#include <cstddef>
#include <string>

namespace braid {

class World;

struct BenchAllreduceOptions {
  std::string algorithm = "all";  // allreduce_names() or all
  std::size_t min_bytes = 1024;
  std::size_t max_bytes = 64u << 20;
  double factor = 2.0;       // size multiplier between rows
  int iters = 20;            // at least this many timed iterations per row
  double min_time_ms = 100;  // and at least this long (iterations double until it is)
  int warmup = 5;
  std::string dtype = "float32";
  std::string op = "sum";
  bool check = false;
  bool json = false;
  std::string calibrate;   // write a cost model file measured on this job, then exit
  std::string cost_model;  // cost model file for "auto" (rank 0's is used by every rank)
  double timeout_s = 300.0;
  bool debug_checks = false;
  // cpu, or cuda: buffers on cuda:<local rank>, braid's algorithms over the NCCL transport and
  // "native" = ncclAllReduce (CUDA build and a GPU per rank needed, else a ConfigError).
  std::string device = "cpu";
  int ranks_per_node = 0;   // > 0: each N consecutive ranks form a node (runtime.ranks_per_node)
  bool registered = false;  // the buffer lives in shared memory (registered with the node)
  bool stream = false;      // measure the ranks' concurrent float reduce bandwidth instead
};

// Returns the process exit code: 0, or 1 when --check found wrong elements.
int bench_allreduce(const World& world, const BenchAllreduceOptions& options);

}  // namespace braid
