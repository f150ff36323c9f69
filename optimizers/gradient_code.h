// GradientCode: the encoding matrix B and the decoding vectors of gradient coding (Tandon et
// al., ICML 2017; docs/algorithms.md). Pure float64 math, no
// communication.
//
// n workers, n data partitions with partial gradients g_j. Worker i computes on the s + 1
// partitions where row i of B is nonzero and sends f_i = sum_j B_ij g_j. For any set I of
// n - s survivors, decode(I) returns a (zero outside I) with a^T B = 1^T, so
// sum_{i in I} a_i f_i = sum_j g_j exactly (up to float64 rounding).
//
// Schemes: "fractional" repetition needs (s + 1) | n (groups of s + 1 workers hold the same
// partitions, coefficients 0/1: decoding is exact); "cyclic" repetition works for any s < n
// (worker i holds partitions i..i+s mod n; B is built from a random H with H 1 = 0, drawn from
// a fixed generator so every rank builds the same B bit for bit). s = 0 is plain data
// parallelism (B = I). Invalid (scheme, n, s) throw ConfigError naming the values that work.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace braid {

// The coded gradients of the ranks that arrived do not determine the sum: a decoding system that
// is singular for this survivor set (it depends on which ranks came first, so it is a run-time
// failure, not a broken precondition). The message names the survivors and what to change.
class DecodeError : public Error {
 public:
  using Error::Error;
};

class GradientCode {
 public:
  GradientCode(const std::string& scheme, int n, int s);

  int workers() const { return n_; }
  int stragglers() const { return s_; }
  const std::string& scheme() const { return scheme_; }
  double b(int worker, int partition) const { return b_[worker * n_ + partition]; }
  // The s + 1 partitions worker `worker` computes on, ascending, with their weights B_ij.
  std::vector<int> partitions(int worker) const;
  std::vector<double> weights(int worker) const;
  // Decoding vector for `survivors` (ascending, at least n - s distinct workers; only the first
  // n - s are used): n coefficients, zero outside the survivors used. DecodeError if the system
  // for these survivors is singular.
  std::vector<double> decode(const std::vector<int>& survivors) const;

 private:
  void build_fractional();
  void build_cyclic();

  std::string scheme_;
  int n_, s_;
  std::vector<double> b_;  // n x n, row-major
};

// The valid schemes: fractional, cyclic.
const std::vector<std::string>& gradient_code_schemes();
// The straggler counts `scheme` supports with n workers, for messages ("0, 1, 3").
std::vector<int> valid_stragglers(const std::string& scheme, int n);

}  // namespace braid
