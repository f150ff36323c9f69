// `braid bench compress`: what each compressor costs and saves on one float32 gradient bucket,
// run under mpirun, against a dense float32 ring allreduce of the same bucket in the same run.
// Per (size, compressor) rank 0 prints one row:
//   encode_ms    Compressor::encode of the bucket (rank 0 alone, the other ranks wait);
//   decode_ms    Compressor::decode_add of one payload into an accumulator (likewise);
//   payload_bytes  the size of the encoded payload;
//   exchange_ms  one CompressedExchange::launch(...).wait() on every rank (the runtime's own
//                path: error feedback, encode, allreduce or allgather of payloads, decode of
//                every rank's payload, the usage-slot allreduce), as rank 0 saw it;
//   bytes_sent   rank 0's transport bytes_sent() per exchange (real bytes on the wire);
//   ratio        dense bytes_sent / bytes_sent; speedup: dense exchange_ms / exchange_ms.
// The dense row is always measured first (ratio and speedup need it). Times are medians over
// `iters` iterations, each started after a barrier; bytes exclude the barriers. Every rank's
// input is a normal tensor from a fixed seed (seed + rank). --json prints one JSON object per
// row instead of the table. Torch runs one intra-op thread per rank (runtime.threads' default).
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace braid {

class World;

struct BenchCompressOptions {
  std::string compressors;  // comma list of compressor_names() and "dense"; empty: all but none
  std::size_t min_bytes = 64u << 10;  // of the float32 bucket
  std::size_t max_bytes = 16u << 20;
  double factor = 4.0;                  // size multiplier between rows
  double ratio = 0.01;                  // topk, randomk
  int bits = 4;                         // qsgd
  std::string error_feedback = "none";  // error_feedback_names()
  int iters = 10;
  int warmup = 2;
  bool json = false;
  double timeout_s = 300.0;
};

// Phase 1, local: validates the options (ConfigError naming the bad one; an unknown compressor
// lists the valid names). Returns phase 2, collective: measures and prints; exit code 0.
std::function<int()> prepare_bench_compress(World& world, const BenchCompressOptions& options);

}  // namespace braid
