// Sequential gradient coding's schedules by their identities: for every straggler pattern the
// (B, W, lambda) model allows over a horizon (enumerated exhaustively, n <= 8), every job decodes
// to the exact sum of its units (float64, random unit vectors); a pattern outside the model
// leaves a job undecodable; loads match the paper's formulas; bad parameters are ConfigErrors
// naming their key.
#include "optimizers/sequential_code.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <random>

#include "common/error.h"

namespace braid {
namespace {

constexpr int kDim = 3;

struct Params {
  std::string scheme;
  int n, burst, window, lambda, rounds;
};

// Unit u of job j: a fixed pseudo-random vector in [-1, 1)^kDim.
std::vector<double> unit_vector(std::int64_t job, int unit) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(job) * 7919 + static_cast<std::uint64_t>(unit));
  std::vector<double> v(kDim);
  for (double& x : v) x = static_cast<double>(rng() >> 11) * 0x1.0p-52 - 1.0;
  return v;
}

// What a worker's minitask returns: sum_k weights[k] * unit vector units[k].
std::vector<double> result(const MiniTask& task) {
  std::vector<double> sum(kDim, 0.0);
  for (std::size_t k = 0; k < task.units.size(); ++k) {
    const std::vector<double> v = unit_vector(task.job, task.units[k]);
    for (int d = 0; d < kDim; ++d) sum[d] += task.weights[k] * v[d];
  }
  return sum;
}

// The root's side of one run: results arrive per round, chunks add up, coded results are kept
// per (job, group, worker) until the job is decoded.
class Root {
 public:
  explicit Root(const SequentialCode& code) : code_(code) {}

  // Records the round; returns false when the due job does not decode, else checks its sum.
  bool round(const std::vector<char>& arrived, double tamper = 0) {
    for (int w = 0; w < code_.workers(); ++w) {
      if (!arrived[w]) continue;
      for (const MiniTask& task : code_.tasks(w)) {
        if (task.job < 0) continue;
        const std::vector<double> r = result(task);
        if (task.group < 0) {
          add(sums_[task.job], r, 1.0);
        } else {
          coded_[task.job][task.group][w] = r;
        }
      }
    }
    code_.record(arrived);
    const std::int64_t job = code_.due();
    if (job < 0) return true;
    const auto a = code_.decode(job);
    if (!a) return false;
    std::vector<double> decoded = sums_[job];
    decoded.resize(kDim, 0.0);
    for (std::size_t b = 0; b < a->size(); ++b) {
      for (int w = 0; w < code_.workers(); ++w) {
        const double c = (*a)[b][w] + (b == 0 && w == 0 ? tamper : 0.0);
        if (c != 0) add(decoded, coded_[job][static_cast<int>(b)].at(w), c);
      }
    }
    std::vector<double> exact(kDim, 0.0);
    for (int u = 0; u < code_.units(); ++u) add(exact, unit_vector(job, u), 1.0);
    for (int d = 0; d < kDim; ++d) {
      // Up to 2 units^2 terms of magnitude <= max |a| each: rounding well below 1e-12.
      if (std::abs(decoded[d] - exact[d]) > 1e-11 * code_.units()) mismatches_++;
    }
    sums_.erase(job);
    coded_.erase(job);
    return true;
  }
  int mismatches() const { return mismatches_; }
  const SequentialCode& code() const { return code_; }

 private:
  static void add(std::vector<double>& into, const std::vector<double>& v, double c) {
    into.resize(kDim, 0.0);
    for (int d = 0; d < kDim; ++d) into[d] += c * v[d];
  }
  SequentialCode code_;
  std::map<std::int64_t, std::vector<double>> sums_;
  std::map<std::int64_t, std::map<int, std::map<int, std::vector<double>>>> coded_;
  int mismatches_ = 0;
};

std::vector<char> mask(int n, unsigned bits) {
  std::vector<char> m(n);
  for (int w = 0; w < n; ++w) m[w] = (bits >> w) & 1u;
  return m;
}

// Depth-first over every straggler set of every round that keeps the pattern in the model.
// Returns the number of complete patterns; counts failures.
std::int64_t enumerate(const Root& root, int rounds_left, int& undecodable, int& mismatches) {
  if (rounds_left == 0) {
    mismatches += root.mismatches();
    return 1;
  }
  std::int64_t patterns = 0;
  const int n = root.code().workers();
  for (unsigned bits = 0; bits < (1u << n); ++bits) {
    const std::vector<char> straggled = mask(n, bits);
    if (!root.code().conforms(straggled)) continue;
    Root next = root;
    std::vector<char> arrived(n);
    for (int w = 0; w < n; ++w) arrived[w] = !straggled[w];
    if (!next.round(arrived)) {
      ++undecodable;
      continue;
    }
    patterns += enumerate(next, rounds_left - 1, undecodable, mismatches);
  }
  return patterns;
}

class EveryPattern : public testing::TestWithParam<Params> {};

TEST_P(EveryPattern, DecodesEveryJobExactly) {
  const Params p = GetParam();
  SequentialCode code(p.scheme, p.n, p.burst, p.window, p.lambda);
  int undecodable = 0, mismatches = 0;
  const std::int64_t patterns = enumerate(Root(code), p.rounds, undecodable, mismatches);
  EXPECT_GT(patterns, p.rounds) << "the model allows stragglers";
  EXPECT_EQ(undecodable, 0);
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Schemes, EveryPattern,
    testing::Values(Params{"m_sgc", 4, 1, 2, 1, 7}, Params{"m_sgc", 4, 1, 3, 1, 8},
                    Params{"m_sgc", 4, 2, 3, 1, 8}, Params{"m_sgc", 4, 1, 3, 2, 6},
                    Params{"m_sgc", 5, 1, 3, 2, 5}, Params{"m_sgc", 3, 2, 4, 1, 8},
                    Params{"m_sgc", 8, 1, 3, 1, 5}, Params{"sr_sgc", 4, 1, 3, 1, 8},
                    Params{"sr_sgc", 4, 1, 3, 2, 6}, Params{"sr_sgc", 4, 2, 5, 2, 8},
                    Params{"sr_sgc", 6, 1, 2, 3, 4}, Params{"sr_sgc", 8, 2, 3, 3, 3}),
    [](const testing::TestParamInfo<Params>& info) {
      const Params& p = info.param;
      return p.scheme + "_n" + std::to_string(p.n) + "_B" + std::to_string(p.burst) + "_W" +
             std::to_string(p.window) + "_L" + std::to_string(p.lambda);
    });

// Negative controls: the check above can fail.
TEST(SequentialCode, APatternOutsideTheModelLeavesAJobUndecodable) {
  for (const std::string scheme : {"m_sgc", "sr_sgc"}) {
    SequentialCode code(scheme, 4, 1, 3, 1);
    Root root(code);
    // Worker 1 straggles in rounds 0-2 (a burst of 3), worker 2 in rounds 1-2: two distinct
    // stragglers in one window.
    bool decodable = true;
    for (int r = 0; r < 6 && decodable; ++r) {
      std::vector<char> straggled(4, 0);
      if (r == 0) straggled[1] = 1;
      if (r == 1 || r == 2) straggled[1] = straggled[2] = 1;
      if (r == 1) EXPECT_FALSE(root.code().conforms(straggled)) << scheme;
      std::vector<char> arrived(4);
      for (int w = 0; w < 4; ++w) arrived[w] = !straggled[w];
      decodable = root.round(arrived);
    }
    EXPECT_FALSE(decodable) << scheme;
  }
}

TEST(SequentialCode, AWrongCoefficientIsSeen) {
  SequentialCode code("m_sgc", 4, 1, 3, 1);
  Root root(code);
  for (int r = 0; r < 4; ++r) {
    std::vector<char> arrived(4, 1);
    if (r == 1) arrived[2] = 0;
    ASSERT_TRUE(root.round(arrived, 1e-9));
  }
  EXPECT_GT(root.mismatches(), 0);
}

TEST(SequentialCode, LoadsAreThePapers) {
  for (int n : {3, 4, 8}) {
    for (int burst = 1; burst <= 2; ++burst) {
      for (int window = burst + 1; window <= 5; ++window) {
        for (int lambda = 1; lambda < n; ++lambda) {
          const SequentialCode m("m_sgc", n, burst, window, lambda);
          const double expected = static_cast<double>((lambda + 1) * (window - 1 + burst)) /
                                  (n * (burst + (window - 1) * (lambda + 1)));
          EXPECT_NEAR(m.load(), expected, 1e-15);
          EXPECT_EQ(m.delay(), window - 2 + burst);
          if ((window - 1) % burst != 0) continue;
          const SequentialCode sr("sr_sgc", n, burst, window, lambda);
          const int s = (burst * lambda + window - 2 + burst) / (window - 1 + burst);
          EXPECT_NEAR(sr.load(), static_cast<double>(s + 1) / n, 1e-15);
          EXPECT_EQ(sr.delay(), burst);
        }
      }
    }
  }
}

// Each round every worker computes slots() minitasks of the same size: the load is even.
TEST(SequentialCode, EveryWorkerComputesTheSameLoadEachRound) {
  SequentialCode code("m_sgc", 4, 2, 3, 1);
  for (int r = 0; r < 8; ++r) {
    for (int w = 0; w < 4; ++w) {
      const std::vector<MiniTask> tasks = code.tasks(w);
      ASSERT_EQ(static_cast<int>(tasks.size()), code.slots());
      for (const MiniTask& task : tasks) {
        if (task.job >= 0) EXPECT_EQ(task.units.size(), 2u);
      }
    }
    std::vector<char> arrived(4, 1);
    if (r == 2 || r == 3) arrived[1] = 0;  // a burst of 2: reattempts replace coded tasks
    ASSERT_TRUE(code.conforms(mask(4, r == 2 || r == 3 ? 2u : 0u)));
    code.record(arrived);
  }
}

TEST(SequentialCode, BadParametersNameTheirKey) {
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { SequentialCode("gc", 4, 1, 3, 1); }).find("coding.scheme"),
            std::string::npos);
  EXPECT_NE(message([] { SequentialCode("m_sgc", 4, 0, 3, 1); }).find("coding.burst"),
            std::string::npos);
  EXPECT_NE(message([] { SequentialCode("m_sgc", 4, 3, 3, 1); }).find("coding.window"),
            std::string::npos);
  EXPECT_NE(message([] { SequentialCode("m_sgc", 4, 1, 3, 4); }).find("coding.lambda"),
            std::string::npos);
  EXPECT_NE(message([] { SequentialCode("sr_sgc", 4, 2, 4, 1); }).find("divide"),
            std::string::npos);
}

}  // namespace
}  // namespace braid
