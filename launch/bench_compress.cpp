#include "launch/bench_compress.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>
#include <vector>

#include "collectives/communicator.h"
#include "collectives/tensor.h"
#include "common/error.h"
#include "common/statistics.h"
#include "compression/compressor.h"
#include "compression/error_feedback.h"
#include "optimizers/compressed_exchange.h"
#include "runtime/world.h"

namespace braid {

namespace {

constexpr std::uint64_t kInputSeed = 1234;
const char* const kDense = "dense";

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The rows to measure after dense: the named compressors, or all but none.
std::vector<std::string> compressor_list(const std::string& names) {
  std::vector<std::string> valid = {kDense};
  for (const std::string& name : compressor_names()) valid.push_back(name);
  std::vector<std::string> list;
  if (names.empty()) {
    for (const std::string& name : compressor_names())
      if (name != "none") list.push_back(name);
    return list;
  }
  std::stringstream stream(names);
  for (std::string name; std::getline(stream, name, ',');) {
    if (name == "powersgd") {
      throw ConfigError(
          "bench compress: --compressors: powersgd compresses the matrices of a model's "
          "parameters, and this benchmark times flat buckets without a model; "
          "bench/compression.sh measures it in training (or braid bench train with "
          "--set compression.name=powersgd)");
    }
    if (std::find(valid.begin(), valid.end(), name) == valid.end()) {
      throw ConfigError(str_cat("bench compress: --compressors: unknown compressor '", name,
                                "' (valid: ", join(valid), ")"));
    }
    const bool seen = std::find(list.begin(), list.end(), name) != list.end();
    if (name != kDense && !seen) list.push_back(name);
  }
  return list;
}

// Every row size of the sweep, in bytes rounded down to whole float32 elements (at least one).
std::vector<std::size_t> sweep_sizes(const BenchCompressOptions& options) {
  std::vector<std::size_t> sizes;
  for (double size = static_cast<double>(options.min_bytes);
       size <= static_cast<double>(options.max_bytes) * 1.0000001; size *= options.factor) {
    sizes.push_back(std::max<std::size_t>(4, static_cast<std::size_t>(size) / 4 * 4));
  }
  return sizes;
}

CompressedExchangeOptions exchange_options(const BenchCompressOptions& options,
                                           const std::string& name) {
  CompressedExchangeOptions result;
  result.compression.name = name;
  result.compression.ratio = options.ratio;
  result.compression.bits = options.bits;
  result.compression.seed = kInputSeed;
  result.error_feedback = options.error_feedback;
  return result;
}

struct Row {
  std::string compressor;
  std::size_t size = 0;
  bool has_codec = false;  // dense has no encode or decode
  double encode_ms = 0, decode_ms = 0;
  std::size_t payload_bytes = 0;
  double exchange_ms = 0;
  double bytes_sent = 0;
};

// Rank 0 times encode and decode_add of its own input alone; the others wait at the barrier so
// the timing does not share the cores with them.
void time_codec(Communicator& comm, Compressor& compressor, const at::Tensor& input,
                const BenchCompressOptions& options, Row& row) {
  if (comm.rank() == 0) {
    PayloadContext context{0, 0, 0};
    std::vector<double> encode, decode;
    at::Tensor accumulator = at::zeros_like(input);
    for (int i = 0; i < options.warmup + options.iters; ++i) {
      context.step = i;
      auto start = Clock::now();
      const std::vector<std::uint8_t> payload = compressor.encode(input, context);
      const double encode_ms = ms_since(start);
      start = Clock::now();
      compressor.decode_add(payload.data(), payload.size(), accumulator, context);
      const double decode_ms = ms_since(start);
      row.payload_bytes = payload.size();
      if (i < options.warmup) continue;
      encode.push_back(encode_ms);
      decode.push_back(decode_ms);
    }
    row.encode_ms = median(encode);
    row.decode_ms = median(decode);
    row.has_codec = true;
  }
  comm.barrier().wait();
}

// Times `exchange()` (which starts one collective and waits for it) after a barrier, on fresh
// gradients each iteration; bytes are rank 0's transport bytes of the exchanges alone.
template <typename Exchange>
void time_exchange(Communicator& comm, const at::Tensor& input, at::Tensor& gradients,
                   const BenchCompressOptions& options, Exchange&& exchange, Row& row) {
  std::vector<double> times;
  std::uint64_t bytes = 0;
  for (int i = 0; i < options.warmup + options.iters; ++i) {
    gradients.copy_(input);
    comm.barrier().wait();
    const std::uint64_t sent = comm.bytes_sent();
    const auto start = Clock::now();
    exchange(i);
    const double ms = ms_since(start);
    if (i < options.warmup) continue;
    times.push_back(ms);
    bytes += comm.bytes_sent() - sent;
  }
  row.exchange_ms = median(times);
  row.bytes_sent = static_cast<double>(bytes) / options.iters;
}

void print_header(int ranks, const std::vector<std::string>& names,
                  const BenchCompressOptions& options) {
  fmt::print(
      "# braid bench compress: {} ranks, {} (ratio {}, bits {}), error feedback {}, median of {} "
      "iterations ({} warmup)\n",
      ranks, join(names), options.ratio, options.bits, options.error_feedback, options.iters,
      options.warmup);
  fmt::print("#{:>11} {:>10} {:>10} {:>10} {:>12} {:>12} {:>12} {:>8} {:>8}\n", "size(B)",
             "compressor", "encode_ms", "decode_ms", "payload(B)", "exchange_ms", "sent(B)",
             "ratio", "speedup");
}

void print_row(const Row& row, const Row& dense, int ranks, bool json) {
  const double ratio = row.bytes_sent > 0 ? dense.bytes_sent / row.bytes_sent : 0;
  const double speedup = row.exchange_ms > 0 ? dense.exchange_ms / row.exchange_ms : 0;
  if (json) {
    auto ms = [&](double value) { return row.has_codec ? fmt::format("{:.4f}", value) : "null"; };
    fmt::print(
        "{{\"compressor\":\"{}\",\"ranks\":{},\"size\":{},\"count\":{},\"payload_bytes\":{},"
        "\"encode_ms\":{},\"decode_ms\":{},\"exchange_ms\":{:.4f},\"bytes_sent\":{:.1f},"
        "\"ratio\":{:.4f},\"speedup\":{:.4f}}}\n",
        row.compressor, ranks, row.size, row.size / 4, row.payload_bytes, ms(row.encode_ms),
        ms(row.decode_ms), row.exchange_ms, row.bytes_sent, ratio, speedup);
  } else {
    auto ms = [&](double value) { return row.has_codec ? fmt::format("{:.3f}", value) : "-"; };
    fmt::print(" {:>11} {:>10} {:>10} {:>10} {:>12} {:>12.3f} {:>12.0f} {:>8.2f} {:>8.2f}\n",
               row.size, row.compressor, ms(row.encode_ms), ms(row.decode_ms), row.payload_bytes,
               row.exchange_ms, row.bytes_sent, ratio, speedup);
  }
  std::fflush(stdout);
}

int run_bench(World& world, const BenchCompressOptions& options,
              const std::vector<std::string>& names) {
  // One intra-op thread per rank, runtime.threads' default, so that the codecs run as they do in
  // training and ranks sharing cores do not also fight over torch's thread pools.
  at::set_num_threads(1);
  CommOptions comm_options;
  comm_options.timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(options.timeout_s * 1000));
  auto comm = std::make_shared<Communicator>(world.make_transport(), comm_options);
  const int P = comm->size();
  const bool root = comm->rank() == 0;
  if (root && !options.json) print_header(P, names, options);
  at::Tensor usage = at::zeros({1});  // the bucket's non-finite slot (0: finite), summed first
  for (std::size_t size : sweep_sizes(options)) {
    const auto count = static_cast<std::int64_t>(size / 4);
    at::Generator generator = at::detail::createCPUGenerator(kInputSeed + comm->rank());
    const at::Tensor input = at::randn({count}, generator);
    at::Tensor gradients = input.clone();

    Row dense{kDense, size};
    dense.payload_bytes = size;
    time_exchange(
        *comm, input, gradients, options,
        [&](int) { comm->allreduce(as_buffer(gradients), ReduceOp::kSum, "ring").wait(); }, dense);
    if (root) print_row(dense, dense, P, options.json);

    for (const std::string& name : names) {
      Row row{name, size};
      const CompressedExchangeOptions exchange_opts = exchange_options(options, name);
      time_codec(*comm, *make_compressor(exchange_opts.compression), input, options, row);
      CompressedExchange exchange(comm, exchange_opts, /*buckets=*/1);
      time_exchange(
          *comm, input, gradients, options,
          [&](int step) { exchange.launch(0, gradients, usage, step).wait(); }, row);
      if (root) print_row(row, dense, P, options.json);
    }
  }
  return 0;
}

}  // namespace

std::function<int()> prepare_bench_compress(World& world, const BenchCompressOptions& options) {
  const std::vector<std::string> names = compressor_list(options.compressors);
  if (options.min_bytes > options.max_bytes || options.min_bytes == 0 || options.iters < 1 ||
      options.warmup < 0 || options.factor <= 1.0 || !(options.timeout_s > 0)) {
    throw ConfigError(
        "bench compress: need 0 < min-bytes <= max-bytes, factor > 1, iters >= 1, warmup >= 0, "
        "timeout-s > 0");
  }
  try {  // the factories' messages name config keys; say which command they came from
    for (const std::string& name : names)
      make_compressor(exchange_options(options, name).compression);
    parse_error_feedback(options.error_feedback);
  } catch (const ConfigError& e) {
    throw ConfigError(str_cat("bench compress: ", e.what()));
  }
  return [&world, options, names] { return run_bench(world, options, names); };
}

}  // namespace braid
