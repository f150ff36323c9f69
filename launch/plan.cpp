#include "launch/plan.h"

#include <fmt/core.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "common/error.h"
#include "common/statistics.h"
#include "compression/bucket_exchange.h"
#include "compression/compressor.h"
#include "compression/error_feedback.h"
#include "compression/wire_codec.h"
#include "optimizers/fragment_exchange.h"
#include "optimizers/grad_buckets.h"
#include "runtime/compute_threads.h"
#include "runtime/config.h"
#include "runtime/cost_model_file.h"
#include "runtime/optimizer_factory.h"
#include "runtime/planner.h"
#include "runtime/trainer.h"
#include "runtime/world.h"

namespace braid {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// A gradient bucket as the trainer forms it (GradBuckets), reduced to what the planner needs.
struct PlanBucket {
  std::int64_t numel = 0;
  BucketLayout layout;
};

std::vector<PlanBucket> buckets_of(const std::vector<at::Tensor>& parameters, double bucket_mb) {
  const GradBuckets grads(parameters, bucket_mb, /*usage_slots=*/false);
  std::vector<PlanBucket> buckets;
  for (int b = 0; b < grads.bucket_count(); ++b) {
    buckets.push_back({grads.gradients(b).numel(), grads.layout(b)});
  }
  return buckets;
}

struct ComputeTimes {
  double compute_ms = 0, optimizer_ms = 0;
};

// The mean of `steps` training steps of the config's model on random batches of its data, as a
// job's step time is a mean (with the job's ranks computing at once, disturbances included).
ComputeTimes time_compute(const Config& config, PreparedRun& run, int steps) {
  Model& model = *run.model;
  model.train();
  auto optimizer = make_optimizer(config, model.parameters());
  const std::int64_t n = run.data.train.size();
  std::vector<double> compute, step;
  for (int i = 0; i < steps + 3; ++i) {
    const auto [inputs, targets] =
        run.data.train.rows(torch::randint(n, {config.data.batch_size}, torch::kLong));
    optimizer->zero_grad();
    auto start = Clock::now();
    model.loss(model.forward(inputs), targets).backward();
    const double forward_backward = ms_since(start);
    start = Clock::now();
    optimizer->step();
    if (i < 3) continue;
    compute.push_back(forward_backward);
    step.push_back(ms_since(start));
  }
  return {mean(compute), mean(step)};
}

CompressionOptions compression_options(const Config& config, const std::string& name) {
  CompressionOptions options;
  options.name = name;
  options.ratio = name == "dgc" ? 0.001 : 0.01;
  if (config.compression.name == name) options.ratio = config.compression.ratio;
  options.bits = static_cast<int>(config.compression.bits);
  options.rank = static_cast<int>(config.compression.rank);
  options.scale = config.compression.scale;
  return options;
}

// PowerSGD (rank r) on each matrix n x m of the buckets: P = M Q, orthogonalised, Q = M^T P,
// and the decode P Q^T; vectors go dense. Wire: 4 r (n + m) per matrix, in two allreduces.
PlanCodec time_powersgd(const std::vector<PlanBucket>& buckets, int rank) {
  PlanCodec codec{"powersgd", 0, 0, 0, false, false, 2};
  for (const PlanBucket& bucket : buckets) {
    for (const TensorSegment& tensor : bucket.layout) {
      if (tensor.shape.size() < 2) {
        codec.wire_bytes += 4 * tensor.numel();
        continue;
      }
      const std::int64_t rows = tensor.shape[0], cols = tensor.numel() / rows;
      const std::int64_t r = std::min<std::int64_t>({rank, rows, cols});
      codec.wire_bytes += 4 * r * (rows + cols);
      const at::Tensor m = torch::randn({rows, cols}), q = torch::randn({cols, r});
      std::vector<double> encode, decode;
      for (int i = 0; i < 4; ++i) {
        auto start = Clock::now();
        const at::Tensor p = std::get<0>(at::linalg_qr(m.mm(q)));
        const at::Tensor q_new = m.t().mm(p);
        encode.push_back(ms_since(start));
        start = Clock::now();
        (void)p.mm(q_new.t());
        decode.push_back(ms_since(start));
      }
      codec.encode_ms += median(encode);
      codec.decode_ms += median(decode);
    }
  }
  return codec;
}

// A payload compressor on every bucket: the median of 4 encodes and decode_adds of a random
// gradient, and its payload's size.
PlanCodec time_compressor(const Config& config, const std::string& name,
                          const std::vector<PlanBucket>& buckets, int ranks) {
  const CompressionOptions options = compression_options(config, name);
  auto compressor = make_compressor(options);
  PlanCodec codec{name, 0, 0, 0, compressor->summable(), false, 1};
  // The path the strategy's exchange takes for these options at this rank count.
  codec.two_phase =
      std::string(make_bucket_exchange(options, ErrorFeedbackKind::kNone, ranks)->path()) ==
      "two_phase";
  for (int b = 0; b < static_cast<int>(buckets.size()); ++b) {
    compressor->set_layout(b, buckets[b].layout);
    const at::Tensor gradient = torch::randn({buckets[b].numel});
    at::Tensor sum = torch::zeros_like(gradient);
    std::vector<double> encode, decode;
    for (int i = 0; i < 4; ++i) {
      const PayloadContext context{b, i, 0};
      auto start = Clock::now();
      const std::vector<std::uint8_t> payload = compressor->encode(gradient, context);
      encode.push_back(ms_since(start));
      start = Clock::now();
      compressor->decode_add(payload.data(), payload.size(), sum, context);
      decode.push_back(ms_since(start));
      if (i == 0) codec.wire_bytes += payload.size();
    }
    codec.encode_ms += median(encode);
    codec.decode_ms += median(decode);
  }
  return codec;
}

std::vector<std::string> split_names(const std::string& names) {
  std::vector<std::string> list;
  std::stringstream stream(names);
  for (std::string name; std::getline(stream, name, ',');) {
    if (!name.empty()) list.push_back(name);
  }
  return list;
}

}  // namespace

namespace {

std::string megabytes(double bytes) { return fmt::format("{:.3g}", bytes / 1e6); }

std::string network_text(const PlanOptions& options, const PlanNetwork& net) {
  const std::string rate =
      net.bandwidth_bytes_per_s > 0
          ? fmt::format("{} ({} MB/s)", options.bandwidth, megabytes(net.bandwidth_bytes_per_s))
          : std::string("unlimited (the cost model's memory bandwidth)");
  const std::string burst =
      net.burst_bytes > 0 ? fmt::format(", burst {} B", net.burst_bytes) : std::string();
  return fmt::format("{} {} link, latency {} s{}", rate, options.link, net.latency_s, burst);
}

void print_table(const PlanOptions& options, const PlanInputs& in, const std::vector<PlanRow>& rows,
                 const std::string& cost_model_source) {
  const double gradient = gradient_bytes(in);
  fmt::print("# braid plan {}: {} ranks, {} per node, {}\n", options.config_path, in.ranks,
             in.ranks_per_node, network_text(options, in.network));
  fmt::print(
      "# measured here: forward+backward {:.2f} ms, optimizer {:.2f} ms per step; "
      "gradients {} MB in {} bucket(s)\n",
      in.compute_ms, in.optimizer_ms, megabytes(gradient), in.bucket_bytes.size());
  for (const PlanCodec& c : in.codecs) {
    fmt::print("#   {:<8} wire {:>8} MB per rank, encode {:.2f} ms, decode {:.2f} ms per step\n",
               c.name, megabytes(c.wire_bytes), c.encode_ms, c.decode_ms);
  }
  fmt::print("# cost model ({}): alpha {:.3g} s, beta {:.3g} s/B, gamma {:.3g} s/B\n",
             cost_model_source, in.memory.alpha_s, in.memory.beta_s_per_byte,
             in.memory.gamma_s_per_byte);
  double exact = 0;
  for (const PlanRow& r : rows) {
    if (quality_class(r) == "exact" && (exact == 0 || r.step_ms < exact)) exact = r.step_ms;
  }
  fmt::print(
      "# {:>3} {:<17} {:<11} {:<12} {:<10} {:>10} {:>11} {:>9} {:>7} {:>9} {:>9} {:>8}  {}\n", "#",
      "strategy", "compression", "algorithm", "exchange", "step_ms", "exposed_ms", "comm_ms",
      "overlap", "MB/step", "peak_MB", "vs_sync", "quality");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const PlanRow& r = rows[i];
    fmt::print(
        "  {:>3} {:<17} {:<11} {:<12} {:<10} {:>10.2f} {:>11.2f} {:>9.2f} {:>6.0f}% {:>9} {:>9} "
        "{:>7.2f}x  {}\n",
        i + 1, r.strategy, r.compression, r.algorithm, r.exchange, r.step_ms, r.exposed_comm_ms,
        r.comm_ms, 100 * r.overlap, megabytes(r.bytes_per_step), megabytes(r.peak_bytes),
        exact / r.step_ms, r.quality);
  }
  const auto best_of = [&](const std::string& cls) -> const PlanRow* {
    for (const PlanRow& r : rows)
      if (quality_class(r) == cls) return &r;
    return nullptr;
  };
  const PlanRow* dense = best_of("exact");
  const PlanRow* compressed = best_of("compressed");
  if (dense && compressed) {
    if (compressed->step_ms >= dense->step_ms) {
      fmt::print(
          "Compression does not pay here: the best compressed exchange ({}, {}) takes "
          "{:.2f} ms per step against {:.2f} ms for dense {}.\n",
          compressed->compression, compressed->algorithm, compressed->step_ms, dense->step_ms,
          dense->algorithm);
    } else {
      fmt::print(
          "Compression pays here: {} ({}) takes {:.2f} ms per step against {:.2f} ms for "
          "dense {} ({:.2f}x), at the quality cost above.\n",
          compressed->compression, compressed->algorithm, compressed->step_ms, dense->step_ms,
          dense->algorithm, dense->step_ms / compressed->step_ms);
    }
  }
  fmt::print("Fastest per quality class (a class reaches a loss in about as many steps):");
  for (const char* cls : {"exact", "compressed", "local"}) {
    if (const PlanRow* r = best_of(cls)) {
      fmt::print(" {} {}{}{} {:.2f} ms;", cls, r->strategy, r->compression == "none" ? "" : "+",
                 r->compression == "none" ? "" : r->compression, r->step_ms);
    }
  }
  fmt::print("\n");
  fmt::print(
      "First choice: sync.strategy={} compression.name={} sync.algorithm={} ({:.2f} ms "
      "per step; {}).\n",
      rows[0].strategy, rows[0].compression, rows[0].algorithm, rows[0].step_ms, rows[0].quality);
}

void print_json(const PlanInputs& in, const std::vector<PlanRow>& rows) {
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const PlanRow& r = rows[i];
    const nlohmann::json row = {
        {"rank", i + 1},
        {"strategy", r.strategy},
        {"compression", r.compression},
        {"algorithm", r.algorithm},
        {"exchange", r.exchange},
        {"step_ms", r.step_ms},
        {"exposed_comm_ms", r.exposed_comm_ms},
        {"comm_ms", r.comm_ms},
        {"overlap", r.overlap},
        {"bytes_per_step", r.bytes_per_step},
        {"peak_bytes", r.peak_bytes},
        {"compute_ms", in.compute_ms + in.optimizer_ms},
        {"class", quality_class(r)},
        {"quality", r.quality},
    };
    fmt::print("{}\n", row.dump());
  }
}

// --compressors, checked: names compression.name takes, none excepted (always planned).
std::vector<std::string> compressors_of(const PlanOptions& options) {
  std::vector<std::string> valid;
  for (const std::string& name : compression_names())
    if (name != "none") valid.push_back(name);
  const std::vector<std::string> names = split_names(options.compressors);
  for (const std::string& name : names) {
    if (std::find(valid.begin(), valid.end(), name) == valid.end()) {
      throw ConfigError(str_cat("--compressors: unknown compressor '", name,
                                "' (valid: ", join(valid), "; none is always planned)"));
    }
  }
  return names;
}

PlanNetwork network_of(const PlanOptions& options) {
  PlanNetwork net;
  net.bandwidth_bytes_per_s = parse_rate(options.bandwidth, "--bandwidth");
  net.latency_s = parse_seconds(options.latency, "--latency");
  net.shared = options.link == "shared";
  net.burst_bytes = parse_bytes(options.burst, "--burst");
  return net;
}

// Everything `braid plan` measures here, on every rank at once; collective (the slowest rank's
// compute times: a synchronous step waits for it).
PlanInputs measure(const World& world, const Config& config, PreparedRun& run,
                   const PlanOptions& options, const std::vector<std::string>& names) {
  set_compute_threads(static_cast<int>(config.runtime.threads));
  const ComputeTimes mine = time_compute(config, run, options.steps);
  const auto compute = world.all_values(static_cast<std::uint64_t>(1e3 * mine.compute_ms));
  const auto optimizer = world.all_values(static_cast<std::uint64_t>(1e3 * mine.optimizer_ms));
  const std::vector<PlanBucket> buckets =
      buckets_of(run.model->parameters(), config.sync.bucket_mb);
  PlanInputs in;
  in.ranks = options.ranks;
  in.ranks_per_node = options.ranks_per_node;
  in.compute_ms = 1e-3 * *std::max_element(compute.begin(), compute.end());
  in.optimizer_ms = 1e-3 * *std::max_element(optimizer.begin(), optimizer.end());
  for (const PlanBucket& b : buckets) in.bucket_bytes.push_back(4 * b.numel);
  for (const std::string& name : names) {
    if (name == "dgc" && config.optimizer.name != "sgd") continue;  // dgc needs momentum SGD
    in.codecs.push_back(name == "powersgd"
                            ? time_powersgd(buckets, static_cast<int>(config.compression.rank))
                            : time_compressor(config, name, buckets, options.ranks));
  }
  in.outer_steps = static_cast<int>(config.outer.steps);
  in.fragments = static_cast<int>(config.outer.fragments);
  in.delay_steps = static_cast<int>(config.outer.delay_steps);
  // One fragment in the configured wire format, as FragmentExchange sends it.
  const WireFormat wire = parse_wire(config.outer.wire);
  const std::int64_t fragment =
      std::max<std::int64_t>(1, static_cast<std::int64_t>(gradient_bytes(in)) / 4 /
                                    std::max<std::int64_t>(1, config.outer.fragments));
  in.outer_wire_bytes_per_element =
      static_cast<double>(wire_bytes(wire, fragment)) / static_cast<double>(fragment);
  in.outer_two_phase = wire != WireFormat::kFloat32 &&
                       FragmentExchange::two_phase_pays(wire, fragment, options.ranks);
  return in;
}

}  // namespace

std::function<int()> prepare_plan(World& world, const PlanOptions& options) {
  if (options.ranks < 1) throw ConfigError(str_cat("--ranks must be >= 1, got ", options.ranks));
  if (options.ranks_per_node < 1 || options.ranks % options.ranks_per_node != 0) {
    throw ConfigError(str_cat("--ranks-per-node ", options.ranks_per_node,
                              " must be >= 1 and divide --ranks ", options.ranks));
  }
  const PlanNetwork network = network_of(options);
  const std::vector<std::string> names = compressors_of(options);
  if (options.steps < 1) throw ConfigError(str_cat("--steps must be >= 1, got ", options.steps));
  std::vector<std::string> overrides = options.overrides;
  overrides.push_back("run.dir=" + (std::filesystem::temp_directory_path() /
                                    fmt::format("braid-plan-unused-{}", getpid()))
                                       .string());
  auto config = std::make_shared<Config>(load_config(options.config_path, overrides));
  const CostModel memory =
      options.cost_model.empty() ? CostModel{} : load_cost_model(options.cost_model);
  auto run = std::make_shared<PreparedRun>(prepare_training(*config, 0, 1));

  return [&world, options, network, names, config, memory, run] {
    PlanInputs in = measure(world, *config, *run, options, names);
    in.network = network;
    in.memory = memory;
    if (world.rank() == 0) {
      const std::vector<PlanRow> rows = plan(in);
      if (options.json) {
        print_json(in, rows);
      } else {
        print_table(options, in, rows,
                    options.cost_model.empty() ? "defaults" : "file " + options.cost_model);
      }
      std::fflush(stdout);
    }
    world.lowest_failing_rank(false);
    return 0;
  };
}

}  // namespace braid
