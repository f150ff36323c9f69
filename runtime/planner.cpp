#include "runtime/planner.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace braid {

namespace {

int nodes_of(const PlanInputs& in) {
  return std::max(1, (in.ranks + in.ranks_per_node - 1) / std::max(1, in.ranks_per_node));
}

// One phase on the network: `rounds` messages one after another, while each of `senders`
// endpoints sends `bytes_each` in all. A shared medium carries every sender's bytes. The first
// bytes after an idle link pass at once, up to `*credit` (the link's burst), which they use up.
double network_seconds(const PlanInputs& in, int rounds, double bytes_each, int senders,
                       double* credit) {
  const PlanNetwork& net = in.network;
  const bool unlimited = net.bandwidth_bytes_per_s <= 0;
  const double per_byte = unlimited ? in.memory.beta_s_per_byte : 1.0 / net.bandwidth_bytes_per_s;
  const double latency = unlimited ? in.memory.alpha_s : net.latency_s + in.memory.alpha_s;
  double volume = net.shared ? bytes_each * senders : bytes_each;
  if (credit && !unlimited) {
    const double free = std::min(*credit, volume);
    volume -= free;
    *credit -= free;
  }
  return rounds * latency + volume * per_byte;
}

// The burst an exchange starts with: what the link's bucket refilled while the step computed.
double burst_after_compute(const PlanInputs& in) {
  const double rate = in.network.bandwidth_bytes_per_s;
  if (rate <= 0) return 0;
  return std::min(in.network.burst_bytes, 1e-3 * (in.compute_ms + in.optimizer_ms) * rate);
}

int log2_ceil(int p) {
  int rounds = 0;
  while ((1 << rounds) < p) ++rounds;
  return rounds;
}

// Whole-step codec figures apportioned to one bucket by its share of the gradient.
struct Share {
  double encode_s, decode_s, wire;
};

Share share_of(const PlanCodec& codec, double bucket, double total) {
  const double f = total > 0 ? bucket / total : 0;
  return {1e-3 * codec.encode_ms * f, 1e-3 * codec.decode_ms * f, codec.wire_bytes * f};
}

// Seconds and bytes one rank spends on one bucket of `bytes` with `codec` (nullptr: dense).
std::pair<double, double> bucket_exchange(const PlanInputs& in, const std::string& algorithm,
                                          const PlanCodec* codec, double bytes, double total,
                                          double* credit) {
  if (!codec) {
    return {allreduce_seconds(in, algorithm, bytes, credit),
            allreduce_bytes_sent(in, algorithm, bytes)};
  }
  const Share s = share_of(*codec, bytes, total);
  if (codec->summable || codec->allreduces > 1) {
    const double each = s.wire / codec->allreduces;
    double seconds = s.encode_s + s.decode_s;
    for (int i = 0; i < codec->allreduces; ++i) {
      seconds += allreduce_seconds(in, algorithm, each, credit);
    }
    return {seconds, codec->allreduces * allreduce_bytes_sent(in, algorithm, each)};
  }
  const int p = in.ranks;
  if (codec->two_phase) {
    // Each rank encodes a chunk per rank, the owners decode P chunks and encode their mean,
    // then every rank decodes P chunks: about two encodes and two decodes of a bucket.
    const double sent = 2.0 * (p - 1) / p * s.wire;
    return {2 * s.encode_s + 2 * s.decode_s + network_seconds(in, 2 * (p - 1), sent, p, credit),
            sent};
  }
  return {s.encode_s + p * s.decode_s + allgather_seconds(in, s.wire, credit),
          allgather_bytes_sent(in, s.wire)};
}

struct Timeline {
  double step_s, comm_s, bytes;
};

// Buckets become ready during backward in proportion to their bytes (backward takes about two
// thirds of forward plus backward) and are exchanged one after another, each as soon as it is
// ready and the previous one is done: DDP's overlap.
Timeline overlapped_sync(const PlanInputs& in, const std::string& algorithm,
                         const PlanCodec* codec) {
  const double compute = 1e-3 * in.compute_ms;
  const double backward = compute * 2.0 / 3.0;
  const double total = gradient_bytes(in);
  double ready = compute - backward, end = 0, comm = 0, bytes = 0;
  double credit = burst_after_compute(in);
  for (const std::size_t bucket : in.bucket_bytes) {
    ready += total > 0 ? backward * bucket / total : 0;
    const auto [seconds, sent] = bucket_exchange(in, algorithm, codec, bucket, total, &credit);
    end = std::max(end, ready) + seconds;
    comm += seconds;
    bytes += sent;
  }
  return {std::max(compute, end) + 1e-3 * in.optimizer_ms, comm, bytes};
}

PlanRow row(const PlanInputs& in, std::string strategy, std::string compression,
            std::string algorithm, double step_s, double comm_s, double bytes, double peak) {
  PlanRow r;
  r.strategy = std::move(strategy);
  r.compression = std::move(compression);
  r.algorithm = std::move(algorithm);
  r.step_ms = 1e3 * step_s;
  r.exposed_comm_ms = std::max(0.0, r.step_ms - in.compute_ms - in.optimizer_ms);
  r.comm_ms = 1e3 * comm_s;
  r.overlap = r.comm_ms > 0 ? std::clamp(1 - r.exposed_comm_ms / r.comm_ms, 0.0, 1.0) : 1;
  r.bytes_per_step = bytes;
  r.peak_bytes = peak;
  return r;
}

std::string quality_of(const std::string& strategy, const std::string& compression) {
  if (strategy != "allreduce") {
    return "local updates: more steps to the same loss (bench/results/slowlink_local.md)";
  }
  if (compression == "none") return "exact: the reference";
  if (compression == "fp16" || compression == "bf16") return "16-bit gradients: near exact";
  return "compressed gradients: may need more steps (bench/results/compression.md)";
}

std::string exchange_of(const PlanCodec* codec) {
  if (!codec || codec->summable) return "allreduce";
  if (codec->allreduces > 1) return "powersgd";
  return codec->two_phase ? "two_phase" : "gather";
}

// Gathered payloads do not go through sync.algorithm: one row each, with algorithm auto.
void add_sync_rows(const PlanInputs& in, std::vector<PlanRow>& rows) {
  std::vector<const PlanCodec*> codecs = {nullptr};
  for (const PlanCodec& codec : in.codecs) codecs.push_back(&codec);
  for (const PlanCodec* codec : codecs) {
    const std::string exchange = exchange_of(codec);
    const bool gathered = exchange == "gather" || exchange == "two_phase";
    for (const std::string& algorithm : plan_algorithms(in)) {
      const Timeline t = overlapped_sync(in, algorithm, codec);
      rows.push_back(row(in, "allreduce", codec ? codec->name : "none",
                         gathered ? "auto" : algorithm, t.step_s, t.comm_s, t.bytes, t.bytes));
      rows.back().exchange = exchange;
      if (gathered) break;
    }
  }
}

// local_sgd and diloco: H steps alone, then a blocking float32 allreduce of the parameters;
// co2: the same allreduce in the background of the next round's H steps.
void add_local_rows(const PlanInputs& in, std::vector<PlanRow>& rows) {
  const double h = std::max(1, in.outer_steps);
  const double step = 1e-3 * (in.compute_ms + in.optimizer_ms);
  const double n = gradient_bytes(in);
  for (const std::string& algorithm : plan_algorithms(in)) {
    double credit = burst_after_compute(in);
    const double t = allreduce_seconds(in, algorithm, n, &credit);
    const double sent = allreduce_bytes_sent(in, algorithm, n);
    for (const char* strategy : {"local_sgd", "diloco"}) {
      rows.push_back(row(in, strategy, "none", algorithm, step + t / h, t / h, sent / h, sent));
      rows.back().exchange = "allreduce";
    }
    const double exposed = std::max(0.0, t - h * step);
    rows.push_back(row(in, "co2", "none", algorithm, step + exposed / h, t / h, sent / h, sent));
    rows.back().exchange = "allreduce";
  }
}

// streaming_diloco: F fragments, each exchanged once per round in the wire format, overlapped
// with tau inner steps (fragment_exchange.h: a float32 wire is a ring allreduce; 16- and 4-bit
// wires are gathered, or sent in two phases where the inputs say that pays).
void add_streaming_rows(const PlanInputs& in, std::vector<PlanRow>& rows) {
  const double h = std::max(1, in.outer_steps);
  const double f = std::clamp(in.fragments, 1, in.outer_steps);
  const double step = 1e-3 * (in.compute_ms + in.optimizer_ms);
  const double elements = gradient_bytes(in) / 4 / f;
  const double wire = in.outer_wire_bytes_per_element;
  const int p = in.ranks;
  double t = 0, sent = 0, credit = burst_after_compute(in);
  std::string exchange = "gather";
  if (wire >= 4) {
    exchange = "allreduce";
    t = allreduce_seconds(in, "ring", 4 * elements, &credit);
    sent = allreduce_bytes_sent(in, "ring", 4 * elements);
  } else if (in.outer_two_phase) {
    exchange = "two_phase";
    sent = 2.0 * (p - 1) / p * wire * elements;
    t = network_seconds(in, 2 * (p - 1), sent, p, &credit);
  } else {
    t = allgather_seconds(in, wire * elements + 1, &credit);
    sent = allgather_bytes_sent(in, wire * elements + 1);
  }
  const double exposed = std::max(0.0, t - in.delay_steps * step);
  rows.push_back(row(in, "streaming_diloco", "none", wire >= 4 ? "ring" : "auto",
                     step + f * exposed / h, f * t / h, f * sent / h, sent));
  rows.back().exchange = exchange;
}

}  // namespace

double allreduce_seconds(const PlanInputs& in, const std::string& algorithm, double bytes,
                         double* credit) {
  const int p = in.ranks;
  if (p <= 1 || bytes <= 0) return 0;
  const int nodes = nodes_of(in);
  const double gamma = in.memory.gamma_s_per_byte;
  if (nodes == 1) return in.memory.predict(algorithm == "star" ? "star" : "ring", p, bytes);
  if (algorithm == "hierarchical") {
    const double within = in.memory.predict("ring", in.ranks_per_node, bytes);
    const double across = 2.0 * (nodes - 1) / nodes * bytes;
    return within + network_seconds(in, 2 * (nodes - 1), across, nodes, credit) +
           (nodes - 1.0) / nodes * bytes * gamma;
  }
  if (algorithm == "star") {
    // The root receives and then sends P-1 copies: its link, or the medium, carries all.
    const double gather = network_seconds(in, 1, (p - 1) * bytes, 1, credit);
    return gather + network_seconds(in, 1, (p - 1) * bytes, 1, credit) + (p - 1) * bytes * gamma;
  }
  BRAID_CHECK(algorithm == "ring" || algorithm == "rhd", "no model of allreduce ", algorithm);
  const int rounds = algorithm == "ring" ? 2 * (p - 1) : 2 * log2_ceil(p);
  const double each = 2.0 * (p - 1) / p * bytes;
  // A ring of ranks crosses each node boundary once: one rank per node sends on the network.
  return network_seconds(in, rounds, each, nodes, credit) + (p - 1.0) / p * bytes * gamma;
}

double allreduce_bytes_sent(const PlanInputs& in, const std::string& algorithm, double bytes) {
  const int p = in.ranks;
  if (p <= 1) return 0;
  const int nodes = nodes_of(in);
  if (algorithm == "star") return (p - 1) * bytes;  // the root's
  if (algorithm == "hierarchical" && nodes > 1) return 2.0 * (nodes - 1) / nodes * bytes;
  return 2.0 * (p - 1) / p * bytes;
}

double allgather_seconds(const PlanInputs& in, double bytes_per_rank, double* credit) {
  const int p = in.ranks;
  if (p <= 1) return 0;
  if (nodes_of(in) == 1) return in.memory.predict("ring", p, bytes_per_rank * p) / 2;
  // Every rank's payload reaches every other rank; a node's link carries what its ranks send
  // to other nodes.
  const int r = std::max(1, in.ranks_per_node);
  const double leaving = (p - 1) * bytes_per_rank * r * (p - r) / (p - 1.0);
  return network_seconds(in, p - 1, leaving, nodes_of(in), credit);
}

double allgather_bytes_sent(const PlanInputs& in, double bytes_per_rank) {
  return in.ranks <= 1 ? 0 : (in.ranks - 1) * bytes_per_rank;
}

std::vector<std::string> plan_algorithms(const PlanInputs& in) {
  if (in.ranks_per_node > 1 && nodes_of(in) > 1) return {"hierarchical", "ring"};
  return {"ring", "rhd", "star"};
}

double gradient_bytes(const PlanInputs& in) {
  return std::accumulate(in.bucket_bytes.begin(), in.bucket_bytes.end(), 0.0);
}

std::string quality_class(const PlanRow& row) {
  if (row.strategy != "allreduce") return "local";
  return row.compression == "none" ? "exact" : "compressed";
}

namespace {

// The number at the start of `text` and what follows it; ConfigError if there is none.
std::pair<double, std::string> number_and_unit(const std::string& text, const std::string& what) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || !std::isfinite(value) || value < 0) {
    throw ConfigError(str_cat(what, " '", text, "' is not a non-negative number with a unit"));
  }
  std::string unit = text.substr(used);
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return {value, unit};
}

}  // namespace

double parse_rate(const std::string& text, const std::string& what) {
  if (text == "unlimited") return 0;
  auto [value, unit] = number_and_unit(text, what);
  double scale = 1;
  if (!unit.empty() && (unit[0] == 'k' || unit[0] == 'm' || unit[0] == 'g')) {
    scale = unit[0] == 'k' ? 1e3 : unit[0] == 'm' ? 1e6 : 1e9;
    unit = unit.substr(1);
  }
  if (unit == "bit") return value * scale / 8;
  if (unit == "bps") return value * scale;
  throw ConfigError(str_cat(
      what, " '", text, "': give a rate like 100mbit, 1gbit or 12.5mbps (bytes/s), or unlimited"));
}

double parse_bytes(const std::string& text, const std::string& what) {
  auto [value, unit] = number_and_unit(text, what);
  if (unit.empty() || unit == "b") return value;
  if (unit == "kb") return value * 1024;
  if (unit == "mb") return value * 1024 * 1024;
  throw ConfigError(str_cat(what, " '", text, "': give a size like 131100, 128kb or 1mb"));
}

double parse_seconds(const std::string& text, const std::string& what) {
  auto [value, unit] = number_and_unit(text, what);
  if (unit == "s" || (unit.empty() && value == 0)) return value;
  if (unit == "ms") return value * 1e-3;
  if (unit == "us") return value * 1e-6;
  throw ConfigError(str_cat(what, " '", text, "': give a duration like 5ms, 200us or 0.1s"));
}

std::vector<PlanRow> plan(const PlanInputs& in) {
  BRAID_CHECK(in.ranks >= 1 && in.ranks_per_node >= 1, "plan for ", in.ranks, " ranks, ",
              in.ranks_per_node, " per node");
  std::vector<PlanRow> rows;
  add_sync_rows(in, rows);
  add_local_rows(in, rows);
  add_streaming_rows(in, rows);
  for (PlanRow& r : rows) r.quality = quality_of(r.strategy, r.compression);
  std::stable_sort(rows.begin(), rows.end(),
                   [](const PlanRow& a, const PlanRow& b) { return a.step_ms < b.step_ms; });
  return rows;
}

}  // namespace braid
