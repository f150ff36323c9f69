// The planner behind `braid plan`: predicts, for a job of N ranks on a given network, the step
// time, exposed communication and bytes of each way braid can keep replicas in step, from what
// `braid plan` measured on this machine (compute per step, each compressor's encode and decode
// cost and payload size on the model's real buckets). No measurement happens here: the model is
// a pure function of PlanInputs, so it can be tested by its identities.
//
// The network model, per message round of an algorithm: latency + bytes / bandwidth.
//  - switched: every node has its own link of `bandwidth` each way (a cluster's switch), so
//    concurrent transfers of different nodes do not slow each other; the time of a phase is set
//    by the bytes one rank sends.
//  - shared: one medium for everybody (launch/braid-slowlink's shaped loopback, a shared
//    uplink): the time of a phase is set by the bytes all ranks send together.
// Ranks of one node (ranks_per_node > 1) reduce through memory first, with the cost model's
// alpha-beta-gamma (collectives/cost_model.h), and only one rank per node crosses the network.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "collectives/cost_model.h"

namespace braid {

struct PlanNetwork {
  double bandwidth_bytes_per_s = 0;  // <= 0: unlimited, i.e. the cost model's own beta
  double latency_s = 0;              // one way, per message
  bool shared = false;
  // Bytes the link passes at once after it was idle (a token bucket's burst, as tbf's in
  // launch/braid-slowlink), refilled at the link's rate while a step computes.
  double burst_bytes = 0;
};

// One compressor measured on the model's buckets (all buckets of one step together).
struct PlanCodec {
  std::string name;            // compression.name
  double encode_ms = 0;        // all buckets, once per step
  double decode_ms = 0;        // one payload of every bucket (a gather decodes P of them)
  std::size_t wire_bytes = 0;  // one rank's payloads of one step
  bool summable = false;       // allreduced on the wire (fp16, bf16), else gathered
  bool two_phase = false;      // gathered in two phases (bucket_exchange.h), not all-to-all
  int allreduces = 1;          // powersgd: 2 (P, then Q)
};

struct PlanInputs {
  int ranks = 1;
  int ranks_per_node = 1;
  PlanNetwork network;
  CostModel memory;  // intra-node phases and the unlimited network

  double compute_ms = 0;                  // forward and backward of one step (one rank, its batch)
  double optimizer_ms = 0;                // the optimizer's step
  std::vector<std::size_t> bucket_bytes;  // float32 gradient buckets, in backward order
  std::vector<PlanCodec> codecs;          // none is implied

  // The local-update strategies' settings (config section outer).
  int outer_steps = 20;
  int fragments = 2;
  int delay_steps = 1;
  double outer_wire_bytes_per_element = 0.5;  // e3m0: 4 bits; bfloat16 2; float32 4
  bool outer_two_phase = false;  // a fragment goes in two phases (FragmentExchange::two_phase_pays)
};

struct PlanRow {
  std::string strategy;     // sync.strategy
  std::string compression;  // compression.name
  std::string algorithm;    // sync.algorithm; auto where the exchange does not use it
  std::string exchange;     // allreduce | powersgd | gather | two_phase
  double step_ms = 0;       // wall time of one step, averaged over an outer round
  double exposed_comm_ms = 0;
  double comm_ms = 0;         // the exchange's own duration, hidden or not
  double bytes_per_step = 0;  // sent by one rank, averaged over an outer round
  double peak_bytes = 0;      // sent by one rank in its busiest step
  double overlap = 0;         // share of comm_ms hidden behind compute, 0..1
  std::string quality;        // the caveat braid's own measurements give
};

// Seconds for one allreduce of `bytes` over the inputs' ranks with `algorithm` (ring, rhd, star,
// hierarchical), and the bytes one rank sends for it. `credit`: the link's remaining burst in
// bytes, used up by the transfer (nullptr: none).
double allreduce_seconds(const PlanInputs& in, const std::string& algorithm, double bytes,
                         double* credit = nullptr);
double allreduce_bytes_sent(const PlanInputs& in, const std::string& algorithm, double bytes);
// Seconds to gather `bytes` from every rank to every rank (ring allgather), and bytes sent.
double allgather_seconds(const PlanInputs& in, double bytes_per_rank, double* credit = nullptr);
double allgather_bytes_sent(const PlanInputs& in, double bytes_per_rank);

// The algorithms worth considering at this layout: ring, rhd, star across nodes of one rank;
// hierarchical and ring where nodes hold several.
std::vector<std::string> plan_algorithms(const PlanInputs& in);

// Bytes of all gradient buckets of one step.
double gradient_bytes(const PlanInputs& in);

// Every strategy x compression x algorithm row, fastest first.
std::vector<PlanRow> plan(const PlanInputs& in);

// exact (dense sync), compressed (sync with a compressor) or local (local-update strategies):
// rows of one class reach a loss in about the same number of steps.
std::string quality_class(const PlanRow& row);

// A rate in tc's units, as braid-slowlink takes it: "100mbit", "1gbit" (bits/s), "12.5mbps"
// (bytes/s), k, m, g meaning 1000s; "unlimited" is 0. ConfigError naming `what` otherwise.
double parse_rate(const std::string& text, const std::string& what);
// A size in tc's units: "131100" or "131100b" (bytes), "128kb", "1mb" (KiB, MiB).
// ConfigError naming `what` otherwise.
double parse_bytes(const std::string& text, const std::string& what);
// A duration: "5ms", "200us", "0.1s" or "0". ConfigError naming `what` otherwise.
double parse_seconds(const std::string& text, const std::string& what);

}  // namespace braid
