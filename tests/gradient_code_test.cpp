// Gradient codes (optimizers/gradient_code.h): for n up to 8, every valid s and both schemes,
// every set of n - s survivors decodes the full sum of the partition gradients. Float64 on any
// x86-64 CPU: the tolerance is a rounding bound, and a negative control (one survivor dropped)
// must exceed it by far.
#include "optimizers/gradient_code.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "common/error.h"

namespace braid {
namespace {

// All ascending k-subsets of {0..n-1}.
std::vector<std::vector<int>> subsets(int n, int k) {
  std::vector<std::vector<int>> out;
  for (unsigned mask = 0; mask < (1u << n); ++mask) {
    if (__builtin_popcount(mask) != k) continue;
    std::vector<int> set;
    for (int i = 0; i < n; ++i) {
      if (mask & (1u << i)) set.push_back(i);
    }
    out.push_back(set);
  }
  return out;
}

struct Decoded {
  double error = 0;  // max_e |sum_i a_i f_i[e] - sum_j g_j[e]|
  double bound = 0;  // rounding bound for that error
};

// Encodes random partition gradients g (n x dim) with B, decodes with `a`, compares in float64.
// Each f_i and the decoded sum are dot products of at most n terms, and `a` solves a linear
// system of size n backward-stably, so the error is at most a small multiple of
// n * eps * sum_i |a_i| sum_j |B_ij| |g_j|; 8 n eps is that multiple with room to spare.
Decoded decode_sum(const GradientCode& code, const std::vector<double>& a,
                   const std::vector<std::vector<double>>& g) {
  const int n = code.workers();
  const double eps = std::numeric_limits<double>::epsilon();
  Decoded d;
  for (std::size_t e = 0; e < g[0].size(); ++e) {
    double decoded = 0, exact = 0, magnitude = 0;
    for (int j = 0; j < n; ++j) exact += g[j][e];
    for (int i = 0; i < n; ++i) {
      double f = 0, f_magnitude = 0;
      for (int j = 0; j < n; ++j) {
        f += code.b(i, j) * g[j][e];
        f_magnitude += std::abs(code.b(i, j) * g[j][e]);
      }
      decoded += a[i] * f;
      magnitude += std::abs(a[i]) * f_magnitude;
    }
    d.error = std::max(d.error, std::abs(decoded - exact));
    d.bound = std::max(d.bound, 8 * n * eps * (magnitude + std::abs(exact)));
  }
  return d;
}

TEST(GradientCode, EverySurvivorSetDecodesTheFullSum) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> value(-1, 1);
  int checked = 0;
  for (const std::string scheme : {"fractional", "cyclic"}) {
    for (int n = 1; n <= 8; ++n) {
      for (int s : valid_stragglers(scheme, n)) {
        SCOPED_TRACE(scheme + " n=" + std::to_string(n) + " s=" + std::to_string(s));
        const GradientCode code(scheme, n, s);
        for (int j = 0; j < n; ++j) {  // every partition held by exactly s + 1 workers
          int holders = 0;
          for (int i = 0; i < n; ++i) holders += code.b(i, j) != 0;
          EXPECT_EQ(holders, s + 1);
        }
        for (int i = 0; i < n; ++i) EXPECT_EQ(code.partitions(i).size(), std::size_t(s + 1));
        std::vector<std::vector<double>> g(n, std::vector<double>(5));
        for (auto& row : g) {
          for (double& x : row) x = value(rng);
        }
        for (const std::vector<int>& survivors : subsets(n, n - s)) {
          std::vector<double> a = code.decode(survivors);
          for (int i = 0; i < n; ++i) {
            if (std::find(survivors.begin(), survivors.end(), i) == survivors.end()) {
              EXPECT_EQ(a[i], 0.0) << "a straggler's message must not be used";
            }
          }
          const Decoded ok = decode_sum(code, a, g);
          EXPECT_LE(ok.error, ok.bound);
          // Negative control: without the survivor of largest weight the sum is lost.
          if (n > 1) {
            *std::max_element(a.begin(), a.end(),
                              [](double x, double y) { return std::abs(x) < std::abs(y); }) = 0;
            const Decoded bad = decode_sum(code, a, g);
            EXPECT_GT(bad.error, 100 * bad.bound);
          }
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 500);  // the grid really ran
}

TEST(GradientCode, InvalidStragglerCountsNameTheValidOnes) {
  try {
    GradientCode("fractional", 4, 2);
    FAIL() << "fractional n=4 s=2 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("valid: 0, 1, 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(GradientCode("cyclic", 4, 4), ConfigError);
  EXPECT_THROW(GradientCode("cyclic", 4, -1), ConfigError);
  EXPECT_THROW(GradientCode("mds", 4, 1), ConfigError);
  EXPECT_NO_THROW(GradientCode("cyclic", 5, 3));
}

TEST(GradientCode, SameMatrixEveryTime) {
  const GradientCode a("cyclic", 7, 3), b("cyclic", 7, 3);
  for (int i = 0; i < 7; ++i) {
    for (int j = 0; j < 7; ++j) EXPECT_EQ(a.b(i, j), b.b(i, j));
  }
}

}  // namespace
}  // namespace braid
