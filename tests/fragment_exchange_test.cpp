// Streaming DiLoCo's fragment exchange at scale (optimizers/fragment_exchange.h), with threads as
// ranks at P = 2..32: the bfloat16 and e3m0 wires gather every rank's payload while that sends
// less than a float32 ring allreduce and take two phases from where it would not (e3m0 from
// P = 16, bfloat16 from P = 4). On both paths:
//  - every rank gets the bitwise same mean;
//  - e3m0: values that are exact e3m0 codes, the same on every rank, come back exactly (a chunk
//    decoded into the wrong place would not);
//  - bfloat16: rank-dependent values come back within the two roundings' bound,
//    2^-8 (mean_r |x_r| + |mean|) per element (each rounding is at most 2^-9 relative); a mean
//    that left one rank out does not (control);
//  - each rank sends exactly bytes_per_launch();
//  - one rank's flag reaches every rank, and nothing is decoded.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "optimizers/fragment_exchange.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::spawn_ranks;

std::shared_ptr<Communicator> borrow(Communicator& comm) {
  return std::shared_ptr<Communicator>(&comm, [](Communicator*) {});
}

// Exact e3m0 codes: sign * 2^-(i mod 7), so every block of 128 holds a 1 (its scale).
at::Tensor e3m0_exact(std::int64_t n) {
  at::Tensor x = at::empty({n}, at::kFloat);
  for (std::int64_t i = 0; i < n; ++i)
    x[i] = (i % 3 == 0 ? -1.0 : 1.0) * std::ldexp(1.0, -static_cast<int>(i % 7));
  return x;
}

// Drawn before the ranks start: the default generator is shared by the rank threads.
std::vector<at::Tensor> rank_values(int P, std::int64_t n) {
  std::vector<at::Tensor> out;
  for (int r = 0; r < P; ++r) {
    at::manual_seed(100 + r);
    out.push_back(at::randn({n}, at::kFloat));
  }
  return out;
}

struct Launched {
  at::Tensor mean;
  std::uint64_t sent = 0, expected = 0;
  bool two_phase = false;
};

// Every rank launches `values(rank)` once; returns what each rank got.
template <typename Values>
std::vector<Launched> launch_all(WireFormat wire, int P, std::int64_t n, Values values) {
  std::vector<Launched> out(P);
  spawn_ranks(P, [&](Communicator& comm) {
    FragmentExchange exchange(borrow(comm), {at::zeros({n}, at::kFloat)}, wire, {}, 0);
    exchange.view(0).copy_(values(comm.rank()));
    Launched& mine = out[comm.rank()];
    mine.expected = exchange.bytes_per_launch();
    mine.two_phase = FragmentExchange::two_phase_pays(wire, n, P);
    const std::uint64_t before = comm.bytes_sent();
    exchange.launch(7).wait();
    mine.sent = comm.bytes_sent() - before;
    EXPECT_FALSE(exchange.nonfinite_anywhere());
    mine.mean = exchange.view(0).clone();
  });
  return out;
}

TEST(FragmentExchange, TwoPhasesWhereGatheringWouldSendAsMuchAsAFloatRing) {
  for (int P = 2; P <= 32; ++P) {
    EXPECT_EQ(FragmentExchange::two_phase_pays(WireFormat::kE3M0, 384 * P, P), P >= 16) << P;
    EXPECT_EQ(FragmentExchange::two_phase_pays(WireFormat::kBFloat16, 384 * P, P), P >= 4) << P;
  }
}

TEST(FragmentExchange, ExactE3M0ValuesComeBackExactlyAtEveryScale) {
  for (int P = 2; P <= 32; ++P) {
    const std::int64_t n = 384 * P;
    const at::Tensor x = e3m0_exact(n);
    const std::vector<Launched> got = launch_all(WireFormat::kE3M0, P, n, [&](int) { return x; });
    for (int r = 0; r < P; ++r) {
      EXPECT_TRUE(got[r].mean.equal(x)) << "P " << P << " rank " << r;
      EXPECT_EQ(got[r].sent, got[r].expected) << "P " << P << " rank " << r;
    }
  }
}

TEST(FragmentExchange, BFloat16MeansStayWithinTwoRoundingsAtEveryScale) {
  for (int P = 2; P <= 32; ++P) {
    const std::int64_t n = 384 * P;
    const std::vector<at::Tensor> x = rank_values(P, n);
    const std::vector<Launched> got =
        launch_all(WireFormat::kBFloat16, P, n, [&](int r) { return x[r]; });
    at::Tensor sum = at::zeros({n}, at::kDouble), abs_sum = at::zeros({n}, at::kDouble);
    for (int r = 0; r < P; ++r) {
      sum += x[r].to(at::kDouble);
      abs_sum += x[r].to(at::kDouble).abs();
    }
    const at::Tensor mean = sum / P;
    const at::Tensor bound = std::ldexp(1.0, -8) * (abs_sum / P + mean.abs());
    const at::Tensor missing_one = (sum - x[0].to(at::kDouble)) / P;
    for (int r = 0; r < P; ++r) {
      EXPECT_TRUE(got[r].mean.equal(got[0].mean)) << "P " << P << " rank " << r;
      const at::Tensor m = got[r].mean.to(at::kDouble);
      EXPECT_TRUE((m - mean).abs().le(bound).all().item<bool>()) << "P " << P << " rank " << r;
      EXPECT_FALSE((m - missing_one).abs().le(bound).all().item<bool>()) << "P " << P;
      EXPECT_EQ(got[r].sent, got[r].expected) << "P " << P << " rank " << r;
      EXPECT_EQ(got[r].two_phase, P >= 4);
    }
  }
}

TEST(FragmentExchange, OneRanksFlagReachesEveryRankOnBothPaths) {
  struct Case {
    WireFormat wire;
    int P;
  };
  for (const Case c :
       {Case{WireFormat::kE3M0, 3}, Case{WireFormat::kE3M0, 16}, Case{WireFormat::kBFloat16, 5}}) {
    const WireFormat wire = c.wire;
    const int P = c.P;
    const std::int64_t n = 384 * P;
    const std::vector<at::Tensor> values = rank_values(P, n);
    spawn_ranks(P, [&](Communicator& comm) {
      FragmentExchange exchange(borrow(comm), {at::zeros({n}, at::kFloat)}, wire, {}, 0);
      const at::Tensor& x = values[comm.rank()];
      exchange.view(0).copy_(x);
      exchange.launch(3, /*flag=*/comm.rank() == 1).wait();
      EXPECT_TRUE(exchange.nonfinite_anywhere()) << "P " << P << " rank " << comm.rank();
      EXPECT_TRUE(exchange.view(0).equal(x)) << "nothing is decoded";
    });
  }
}

}  // namespace
}  // namespace braid
