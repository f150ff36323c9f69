// Alpha-beta-gamma cost model: one message of S bytes
// costs alpha + S*beta, reducing S bytes costs S*gamma. "auto" evaluates each algorithm's
// formula for the rank count and message size and picks the cheapest. Defaults were measured
// on a 2-core shared-memory machine; `braid bench allreduce --calibrate FILE` measures them
// anew (ping-pong fit for alpha and beta, a local reduction for gamma); runtime/cost_model_file.h
// reads and writes that file (this layer opens no files). A Communicator uses rank 0's model on
// every rank (it broadcasts serialize() when it is created), so "auto" picks alike everywhere.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace braid {

struct CostModel {
  double alpha_s = 2e-6;             // per-message latency
  double beta_s_per_byte = 2.5e-10;  // inverse bandwidth (4 GB/s)
  double gamma_s_per_byte = 1e-10;   // inverse reduction throughput (10 GB/s)

  // Measured winners (from `braid bench allreduce --calibrate`) at one rank count: the fastest
  // of ring, star, rhd and native per message size. They replace the formulas when the rank
  // count matches, because the formulas cannot see effects such as oversubscribed cores, where
  // every message latency includes a context switch.
  int measured_ranks = 0;
  std::vector<std::size_t> measured_bytes;  // ascending
  std::vector<std::string> measured_best;

  // Predicted seconds for one allreduce of `bytes` over `ranks` ranks with ring, star or rhd.
  double predict(const std::string& algorithm, int ranks, std::size_t bytes) const;
  // The measured winner at the nearest measured size (log scale) when the table covers `ranks`
  // and `native` is available or not needed; otherwise the lowest prediction among ring, star
  // and rhd.
  std::string choose(int ranks, std::size_t bytes, bool native_available = false) const;

  // Compact form for sending to other ranks: alpha, beta, gamma, measured_ranks, n, then n sizes
  // and n algorithm codes (ring 0, star 1, rhd 2, native 3), all as doubles (sizes below 2^53
  // are exact).
  std::vector<double> serialize() const;
  // Inverse of serialize(). The values come from a peer: a malformed vector is a CommError.
  static CostModel deserialize(const std::vector<double>& values);
};

}  // namespace braid
