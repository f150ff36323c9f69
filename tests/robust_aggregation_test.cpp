// Robust aggregation (optimizers/robust_rules.h, robust_exchange.h, byzantine_attack.h), threads
// as ranks. Each rule against a plain float64 implementation written here from the papers'
// definitions over whole vectors (no chunks, no Gram trick); ties, f = 0, breakdown points; the
// exchange over 1..5 ranks against the plain rule, bitwise equal on every rank, with the bytes of
// its formula; the attacks; non-finite inputs dropped and counted against f.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <numeric>

#include "common/error.h"
#include "optimizers/byzantine_attack.h"
#include "optimizers/robust_exchange.h"
#include "optimizers/robust_rules.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::spawn_ranks;

AggregatorOptions rule_of(const std::string& name, int f = 0) {
  AggregatorOptions o;
  o.name = name;
  o.byzantine = f;
  return o;
}

// Rows g_i: a shared direction plus rank-specific noise, so the rules have something to agree on.
at::Tensor inputs(int n, std::int64_t d, int seed = 1) {
  at::Tensor g = at::empty({n, d}, at::kDouble);
  for (int i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j)
      g[i][j] = std::sin(0.3 * (j + 1)) + 0.4 * std::sin(1.7 * (i + seed) * (j + 2) + i);
  return g;
}

// ---- Plain implementations over whole vectors ----

at::Tensor plain_coordinate(const std::string& name, const at::Tensor& g, int k) {
  const auto n = g.size(0), d = g.size(1);
  at::Tensor out = at::empty({d}, at::kDouble);
  for (std::int64_t j = 0; j < d; ++j) {
    std::vector<double> v(n);
    for (std::int64_t i = 0; i < n; ++i) v[i] = g[i][j].item<double>();
    std::sort(v.begin(), v.end());
    if (name == "mean") {
      out[j] = std::accumulate(v.begin(), v.end(), 0.0) / n;
    } else if (name == "median") {
      out[j] = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    } else {
      out[j] = std::accumulate(v.begin() + k, v.end() - k, 0.0) / (n - 2 * k);
    }
  }
  return out;
}

at::Tensor plain_krum(const at::Tensor& g, int f, int m) {
  const auto n = g.size(0);
  std::vector<double> score(n);
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<double> d;
    for (std::int64_t j = 0; j < n; ++j)
      if (j != i) d.push_back((g[i] - g[j]).pow(2).sum().item<double>());
    std::sort(d.begin(), d.end());
    score[i] = std::accumulate(d.begin(), d.begin() + (n - f - 2), 0.0);
  }
  std::vector<std::int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return score[a] < score[b]; });
  at::Tensor sum = at::zeros({g.size(1)}, at::kDouble);
  for (int k = 0; k < m; ++k) sum += g[order[k]];
  return sum / m;
}

at::Tensor plain_centered_clip(const at::Tensor& g, at::Tensor v, int iterations, double tau) {
  const auto n = g.size(0);
  for (int it = 0; it < iterations; ++it) {
    std::vector<double> d(n);
    for (std::int64_t i = 0; i < n; ++i) d[i] = (g[i] - v).norm().item<double>();
    std::vector<double> sorted = d;
    std::sort(sorted.begin(), sorted.end());
    const double t =
        tau > 0 ? tau : (n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2);
    at::Tensor step = at::zeros_like(v);
    for (std::int64_t i = 0; i < n; ++i) step += (g[i] - v) * std::min(1.0, t / d[i]);
    v = v + step / n;
  }
  return v;
}

// Flag Aggregator by the reference's recipe on explicit d-dimensional vectors: SVDs of the
// weighted columns, starting from the unweighted flag mean.
at::Tensor plain_flag(const at::Tensor& g, int r, double lambda, int iterations) {
  const auto n = g.size(0);
  const at::Tensor norms = g.norm(2, {1});
  const at::Tensor x = (g / norms.unsqueeze(1)).t();  // d x n
  auto top = [&](const at::Tensor& columns) {
    return std::get<0>(at::linalg_svd(columns, false)).narrow(1, 0, r);
  };
  auto err = [&](const at::Tensor& y) {
    return (1 - y.t().matmul(x).pow(2).sum(0)).clamp_min(0).sqrt().sum().item<double>();
  };
  at::Tensor y = top(x);
  double e = err(y);
  for (int it = 0; it < iterations; ++it) {
    auto w = [&](const at::Tensor& z) {
      return ((1 - y.t().matmul(z).pow(2).sum(0)).abs() + 1e-7).pow(-0.25);
    };
    std::vector<at::Tensor> cols{x * w(x).unsqueeze(0)};
    for (std::int64_t i = 0; lambda > 0 && i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        if (i != j) {
          const at::Tensor z = (x.select(1, i) - x.select(1, j)).unsqueeze(1);
          cols.push_back(z * w(z) * (lambda / (n * (n - 1.0))));
        }
    const at::Tensor next = top(at::cat(cols, 1));
    const double diff = e - err(next);
    if (diff > 0) y = next, e = e - diff;
    if (diff <= 1e-10) break;
  }
  std::vector<double> sorted(norms.data_ptr<double>(), norms.data_ptr<double>() + n);
  std::sort(sorted.begin(), sorted.end());
  const double med = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return y.matmul(y.t().matmul(x).sum(1)) * (med / n);
}

// The rule as the exchange computes it, on the whole rows (one owner).
at::Tensor by_rule(const AggregatorOptions& o, const at::Tensor& g, const at::Tensor& center) {
  if (!gram_based(o.name)) return coordinate_rule(o, g, o.byzantine);
  const at::Tensor x = uses_center(o.name) ? at::cat({g, center.unsqueeze(0)}) : g;
  return at::tensor(gram_rule(o, x.matmul(x.t()), o.byzantine), at::kDouble).matmul(x);
}

at::Tensor plain(const AggregatorOptions& o, const at::Tensor& g, const at::Tensor& center) {
  const int n = static_cast<int>(g.size(0)), f = o.byzantine;
  if (o.name == "krum") return plain_krum(g, f, 1);
  if (o.name == "multi_krum") return plain_krum(g, f, o.krum_m > 0 ? o.krum_m : n - f);
  if (o.name == "centered_clip")
    return plain_centered_clip(g, center, o.clip_iterations, o.clip_radius);
  if (o.name == "flag") {
    return plain_flag(g, o.flag_subspace > 0 ? o.flag_subspace : (n + 1) / 2, o.flag_lambda,
                      o.flag_iterations);
  }
  return plain_coordinate(o.name, g, trimmed_per_side(o, n, f));
}

double max_relative(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item<double>();
}

std::vector<AggregatorOptions> every_rule(int f) {
  std::vector<AggregatorOptions> rules;
  for (const auto& name : aggregator_names())
    rules.push_back(rule_of(name, name == "mean" ? 0 : f));
  AggregatorOptions o = rule_of("multi_krum", f);
  o.krum_m = 2;
  rules.push_back(o);
  o = rule_of("trimmed_mean", f);
  o.trim = 0.3;
  rules.push_back(o);
  o = rule_of("centered_clip", f);
  o.clip_radius = 0.5;
  o.clip_iterations = 5;
  rules.push_back(o);
  o = rule_of("flag", f);
  o.flag_subspace = 2;
  o.flag_lambda = 0.5;
  rules.push_back(o);
  return rules;
}

TEST(RobustRules, MatchPlainFloat64Implementations) {
  for (int n : {7, 8}) {
    const at::Tensor g = inputs(n, 50);
    const at::Tensor center = inputs(1, 50, 9)[0] * 0.5;
    for (const AggregatorOptions& o : every_rule(2)) {
      const double error = max_relative(by_rule(o, g, center), plain(o, g, center));
      // Reordered float64 sums of ~50 terms, and for flag an eigen- against a singular value
      // decomposition of well-separated spectra.
      EXPECT_LT(error, o.name == "flag" ? 1e-9 : 1e-12) << o.name << " n=" << n;
    }
  }
}

TEST(RobustRules, NegativeControlAnotherRuleDiffers) {
  const at::Tensor g = inputs(8, 50);
  const at::Tensor zero = at::zeros({50}, at::kDouble);
  for (const AggregatorOptions& o : every_rule(2)) {
    if (o.name == "mean") continue;
    EXPECT_GT(max_relative(by_rule(o, g, zero), plain(rule_of("mean"), g, zero)), 1e-3) << o.name;
  }
}

TEST(RobustRules, WithoutBadRanksSymmetricInputsGiveTheMean) {
  // x_i = c + s_i v with s symmetric about 0: median and trimmed mean are the mean, c.
  for (int n : {5, 6}) {
    at::Tensor g = at::empty({n, 4}, at::kDouble);
    const at::Tensor c = at::tensor({1.0, -2.0, 0.5, 3.0}, at::kDouble);
    const at::Tensor v = at::tensor({0.25, 1.0, -0.5, 2.0}, at::kDouble);
    for (int i = 0; i < n; ++i) g[i] = c + v * (i - (n - 1) / 2.0);
    for (const char* name : {"median", "trimmed_mean"}) {
      EXPECT_LT(max_relative(coordinate_rule(rule_of(name, 0), g, 0), c), 1e-15) << name;
      EXPECT_LT(max_relative(coordinate_rule(rule_of(name, 1), g, 1), c), 1e-15) << name;
    }
  }
}

TEST(RobustRules, TiesAreBrokenTheSameWay) {
  // Equal values: the median is that value; two equally good Krum candidates: the lower rank.
  const at::Tensor g = at::tensor({1.0, 1.0, 1.0, 5.0, -3.0}, at::kDouble).unsqueeze(1);
  EXPECT_EQ(coordinate_rule(rule_of("median", 2), g, 2).item<double>(), 1.0);
  const at::Tensor twins =
      at::tensor({0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 9.0, 9.0}, at::kDouble).view({5, 2});
  const std::vector<double> c = gram_rule(rule_of("krum", 1), twins.matmul(twins.t()), /*f=*/1);
  EXPECT_EQ(c, (std::vector<double>{1, 0, 0, 0, 0}));
}

// f bad inputs far away: a rule within its limit stays among the honest values; one more bad
// input than the limit (the breakdown point) and the median follows them; the mean already does.
TEST(RobustRules, BreakdownPoints) {
  const int n = 7;
  for (int bad : {3, 4}) {
    at::Tensor g = inputs(n, 20);
    const double honest_max = g.abs().max().item<double>();
    for (int i = 0; i < bad; ++i) g[n - 1 - i].fill_(1e12);
    const double median = coordinate_rule(rule_of("median", 3), g, 3).abs().max().item<double>();
    EXPECT_EQ(median <= honest_max, bad == 3) << bad << " bad: " << median;
    EXPECT_GT(coordinate_rule(rule_of("mean"), g, 0).abs().max().item<double>(), 1e11);
  }
  at::Tensor g = inputs(n, 20);
  const double honest_max = g.abs().max().item<double>();
  for (int i = 0; i < 2; ++i) g[i].fill_(1e12);
  for (const char* name : {"krum", "multi_krum", "centered_clip", "flag", "trimmed_mean"}) {
    const at::Tensor out = by_rule(rule_of(name, 2), g, at::zeros({20}, at::kDouble));
    EXPECT_LE(out.abs().max().item<double>(), 2 * honest_max) << name;
  }
}

TEST(RobustRules, FlagOfIdenticalGradientsIsThatGradient) {
  at::Tensor g = inputs(1, 30)[0].repeat({5, 1});
  const at::Tensor out = by_rule(rule_of("flag"), g, {});
  EXPECT_LT(max_relative(out, g[0]), 1e-12);
}

TEST(RobustRules, FlagIgnoresThePositiveScaleOfAnInput) {
  const at::Tensor g = inputs(7, 40);
  at::Tensor scaled = g.clone();
  // The largest gradient grows: its direction, and the median norm, are unchanged.
  const auto largest = g.norm(2, {1}).argmax().item<std::int64_t>();
  scaled[largest] *= 1000;
  EXPECT_LT(max_relative(by_rule(rule_of("flag"), scaled, {}), by_rule(rule_of("flag"), g, {})),
            1e-9);
  scaled[largest] *= -1;  // negative control: a sign is not a scale for the mean of projections
  EXPECT_GT(max_relative(by_rule(rule_of("mean"), scaled, {}), by_rule(rule_of("mean"), g, {})),
            1e-3);
}

// The ConfigError's message of `check()`, or "" when it accepts.
template <typename Check>
std::string config_error(Check check) {
  try {
    check();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(RobustRules, LimitsAreConfigErrorsNamingTheRule) {
  auto message = [](const AggregatorOptions& o, int n) {
    return config_error([&] { check_aggregator(o, n); });
  };
  EXPECT_NE(message(rule_of("krum", 2), 6).find("krum tolerates at most 1 bad ranks of 6"),
            std::string::npos)
      << message(rule_of("krum", 2), 6);
  EXPECT_EQ(message(rule_of("krum", 2), 7), "");
  // (2 - 3) / 2 is 0 in C++: the limit must still say that Krum cannot run on 2 ranks.
  EXPECT_NE(message(rule_of("krum", 0), 2).find("krum needs at least 3 ranks"), std::string::npos)
      << message(rule_of("krum", 0), 2);
  EXPECT_EQ(message(rule_of("multi_krum", 0), 3), "");
  EXPECT_NE(message(rule_of("mean", 1), 8).find("at most 0"), std::string::npos);
  EXPECT_NE(message(rule_of("median", 4), 8).find("f < n/2"), std::string::npos);
  AggregatorOptions o = rule_of("trimmed_mean", 2);
  o.trim = 0.1;
  EXPECT_NE(message(o, 8).find("sync.trim = 0.1 cuts 0 of 8"), std::string::npos) << message(o, 8);
  EXPECT_NE(message(rule_of("geometric_median"), 8).find("valid: mean, median"), std::string::npos);
}

TEST(ByzantineAttack, ConfigErrorsNameTheCause) {
  auto message = [](const AttackOptions& o, int ranks) {
    return config_error([&] { check_attack(o, ranks); });
  };
  AttackOptions o;
  o.name = "sign_flip";
  o.ranks = {1, 1};
  EXPECT_NE(message(o, 4).find("rank 1 is listed twice"), std::string::npos) << message(o, 4);
  o.ranks = {1, 2};
  EXPECT_EQ(message(o, 4), "");
  EXPECT_NE(message(o, 2).find("rank 2 is not one of the 2 ranks"), std::string::npos);
  o.ranks = {};
  EXPECT_NE(message(o, 4).find("needs inject.byzantine_ranks"), std::string::npos);
  o.name = "bogus";
  EXPECT_NE(message(o, 4).find("valid: none, sign_flip"), std::string::npos);
}

// ---- The exchange over threads as ranks ----

struct Outcome {
  std::vector<at::Tensor> results;  // per rank
  std::vector<std::uint64_t> sent;
};

// Every rank r contributes float32 row r of `g` plus `slots`; returns each rank's aggregate.
Outcome exchange(const RobustOptions& o, const at::Tensor& g, int steps = 1,
                 at::ScalarType dtype = at::kFloat) {
  const int P = static_cast<int>(g.size(0));
  Outcome out{std::vector<at::Tensor>(P), std::vector<std::uint64_t>(P)};
  spawn_ranks(P, [&](Communicator& comm) {
    auto shared = std::shared_ptr<Communicator>(&comm, [](Communicator*) {});
    RobustExchange robust(shared, o);
    at::Tensor grad;
    const std::uint64_t before = comm.bytes_sent();
    for (int step = 0; step < steps; ++step) {
      grad = g[comm.rank()].to(dtype).clone();
      at::Tensor slots = at::zeros({3}, dtype);
      slots[0] = 1;
      robust.launch(grad, slots, step).wait();
      EXPECT_EQ(slots[0].item<double>(), P);
    }
    out.results[comm.rank()] = grad;
    out.sent[comm.rank()] = comm.bytes_sent() - before;
  });
  return out;
}

TEST(RobustExchange, EveryRankGetsThePlainRuleOfAllGradientsBitwiseAlike) {
  for (int P : {1, 3, 4, 5}) {
    const std::int64_t d = 103;                                        // not divisible by any P > 1
    const at::Tensor g = inputs(P, d).to(at::kFloat).to(at::kDouble);  // what float32 carries
    for (AggregatorOptions rule : every_rule(P >= 5 ? 1 : 0)) {
      if (rule.name == "krum" || rule.name == "multi_krum") {
        if (P < 2 * rule.byzantine + 3) continue;
        rule.krum_m = std::min(rule.krum_m, P - rule.byzantine);
      }
      if (rule.name == "flag") rule.flag_subspace = std::min(rule.flag_subspace, P);
      if (rule.name == "trimmed_mean" && 2 * trimmed_per_side(rule, P, rule.byzantine) >= P) {
        continue;
      }
      const Outcome out = exchange({rule, {}}, g);
      const at::Tensor expected = plain(rule, g, at::zeros({d}, at::kDouble));
      for (int r = 0; r < P; ++r) {
        EXPECT_TRUE(at::equal(out.results[r], out.results[0])) << rule.name << " rank " << r;
        // Rounded once to float32 at the end: half an ulp, plus float64 reordering.
        const double bound = 0x1p-24 * expected.abs().max().item<double>() * 1.001 + 1e-12;
        EXPECT_LE((out.results[r].to(at::kDouble) - expected).abs().max().item<double>(), bound)
            << rule.name << " P=" << P;
        EXPECT_EQ(out.sent[r], RobustExchange::bytes_sent(rule.name, P, r, d, 3, sizeof(float)))
            << rule.name << " P=" << P << " rank " << r;
      }
    }
  }
}

TEST(RobustExchange, CenteredClipStartsEachStepFromThePreviousAggregate) {
  const int P = 5;
  const at::Tensor g = inputs(P, 41).to(at::kFloat).to(at::kDouble);
  const AggregatorOptions rule = rule_of("centered_clip", 1);
  const Outcome out = exchange({rule, {}}, g, /*steps=*/2);
  const at::Tensor first =
      plain_centered_clip(g, at::zeros({41}, at::kDouble), 3, 0).to(at::kFloat).to(at::kDouble);
  const at::Tensor second = plain_centered_clip(g, first, 3, 0);
  EXPECT_LE((out.results[0].to(at::kDouble) - second).abs().max().item<double>(),
            1e-6 * second.abs().max().item<double>());
  // Negative control: from zero again, the second step would differ.
  EXPECT_GT((out.results[0].to(at::kDouble) - first).abs().max().item<double>(), 1e-4);
}

TEST(RobustExchange, AttacksChangeOnlyWhatTheBadRanksSend) {
  const int P = 4;
  const at::Tensor g = inputs(P, 37).to(at::kFloat).to(at::kDouble);
  const at::Tensor honest = g.narrow(0, 0, 2);  // ranks 0, 1; ranks 2, 3 are bad
  auto mean_under = [&](const std::string& attack) {
    AttackOptions a;
    a.name = attack;
    a.ranks = {2, 3};
    return exchange({rule_of("mean"), a}, g).results[1].to(at::kDouble);
  };
  auto expect_mean_of = [&](const std::string& attack, const at::Tensor& bad_row) {
    const at::Tensor expected = (honest.sum(0) + 2 * bad_row) / P;
    EXPECT_LE((mean_under(attack) - expected).abs().max().item<double>(), 1e-6) << attack;
  };
  const at::Tensor sent = at::stack({g[0], g[1], -g[2], -g[3]});
  EXPECT_LE((mean_under("sign_flip") - sent.mean(0)).abs().max().item<double>(), 1e-6);
  const at::Tensor scaled = at::stack({g[0], g[1], -10 * g[2], -10 * g[3]});
  EXPECT_LE((mean_under("scale") - scaled.mean(0)).abs().max().item<double>(), 1e-5);
  expect_mean_of("alie", honest.mean(0) - 1.5 * honest.std(0, true));
  expect_mean_of("ipm", -0.1 * honest.mean(0));
  // drop zeroes about 10% of a bad rank's coordinates, never changes the others.
  AttackOptions drop;
  drop.name = "drop";
  drop.ranks = {2};
  at::Tensor dropped = inputs(1, 20000)[0];
  const at::Tensor original = dropped.clone();
  attack_outgoing(drop, 2, 0, dropped);
  const double zeroed = (dropped == 0).sum().item<double>() / 20000;
  EXPECT_GT(zeroed, 0.09);
  EXPECT_LT(zeroed, 0.11);
  EXPECT_TRUE(at::equal(dropped.masked_select(dropped != 0), original.masked_select(dropped != 0)));
  at::Tensor untouched = original.clone();
  attack_outgoing(drop, 1, 0, untouched);  // rank 1 is honest
  EXPECT_TRUE(at::equal(untouched, original));
}

TEST(RobustExchange, NonFiniteInputsAreDroppedAndCountedAgainstF) {
  const int P = 5;
  const at::Tensor g = inputs(P, 23).to(at::kFloat).to(at::kDouble);
  AttackOptions nan;
  nan.name = "nan";
  nan.ranks = {3};
  const Outcome out = exchange({rule_of("median", 1), nan}, g);
  const at::Tensor rest = at::cat({g.narrow(0, 0, 3), g.narrow(0, 4, 1)});
  EXPECT_LE((out.results[0].to(at::kDouble) - plain_coordinate("median", rest, 0))
                .abs()
                .max()
                .item<double>(),
            1e-6);
  // Tolerating none, the same NaN is an error on every rank naming rank 3.
  try {
    exchange({rule_of("median", 0), nan}, g);
    FAIL() << "a NaN beyond sync.byzantine was aggregated";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 3 sent gradients with a NaN or inf"),
              std::string::npos)
        << e.what();
  }
  // float64 gradients whose squared norm overflows: dropped like a NaN, counted against f.
  at::Tensor huge = g.clone();
  huge[2].fill_(1e200);
  const Outcome krum = exchange({rule_of("krum", 1), {}}, huge, 1, at::kDouble);
  const at::Tensor others = at::cat({g.narrow(0, 0, 2), g.narrow(0, 3, 2)});
  EXPECT_LE((krum.results[0] - plain_krum(others, 0, 1)).abs().max().item<double>(), 1e-12);
  // mean trusts everyone: the NaN spreads (the negative control of the benchmark).
  const Outcome spread = exchange({rule_of("mean"), nan}, g);
  EXPECT_TRUE(spread.results[0].isnan().all().item<bool>());
}

}  // namespace
}  // namespace braid
