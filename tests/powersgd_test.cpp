// Tier 1: threads as ranks. PowerSGD as a bucket exchange path (compression/powersgd_exchange.h):
// which tensors it compresses, exactness at full rank and on low-rank inputs, the same Q and
// mean on every rank, the bytes of its two allreduces, error feedback around it, and its state.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <mutex>

#include "common/error.h"
#include "compression/bucket_exchange.h"
#include "compression/error_feedback.h"
#include "compression/powersgd_exchange.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::spawn_ranks;
constexpr double kEps = std::numeric_limits<double>::epsilon();

CompressionOptions powersgd(int rank, std::uint64_t seed = 7) {
  CompressionOptions o;
  o.name = "powersgd";
  o.rank = rank;
  o.seed = seed;
  return o;
}

// Segments packed back to back from offset 0, with `gap` unused elements after each.
BucketLayout layout_of(const std::vector<std::vector<std::int64_t>>& shapes, std::int64_t gap = 0) {
  BucketLayout layout;
  std::int64_t offset = 0;
  for (const auto& shape : shapes) {
    layout.push_back(TensorSegment{offset, shape});
    std::int64_t numel = 1;
    for (std::int64_t d : shape) numel *= d;
    offset += numel + gap;
  }
  return layout;
}

std::int64_t numel_of(const BucketLayout& layout, std::int64_t gap = 0) {
  if (layout.empty()) return 0;
  std::int64_t numel = 1;
  for (std::int64_t d : layout.back().shape) numel *= d;
  return layout.back().offset + numel + gap;
}

at::Tensor input_of(int rank, std::int64_t step, std::int64_t n,
                    at::ScalarType type = at::kDouble) {
  at::Tensor x = at::empty({n}, at::kDouble);
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = std::sin(0.37 * static_cast<double>(i + 1) * (rank + 1) + 0.11 * step) * (1 + i % 3);
  }
  return x.to(type);
}

// One run of `path` on this rank's communication thread.
void exchange(Communicator& comm, BucketExchange& path, const at::Tensor& input, int bucket,
              std::int64_t step, at::Tensor& mean, at::Tensor* delta = nullptr) {
  comm.submit(OpDesc{"test_powersgd", "powersgd", input.numel(), DType::kFloat64},
              [&](OpContext& ctx) {
                path.run(ctx, input, PayloadContext{bucket, step, comm.rank()}, mean, delta);
              })
      .wait();
}

double max_abs(const at::Tensor& t) { return t.numel() == 0 ? 0.0 : t.abs().max().item<double>(); }

TEST(PowerSgd, CompressesMatricesThatSaveAtLeastHalf) {
  // [8] bias: 1-D; [4, 3]: r = 2 sends 14 > 12 / 2; [16, 24]: 80 <= 192; [8, 3, 3, 3] as 8 x 27:
  // 70 <= 108; [3, 100]: r = 2 sends 206 > 150.
  BucketLayout layout = layout_of({{8}, {4, 3}, {16, 24}, {8, 3, 3, 3}, {3, 100}});
  auto matrices = PowerSgdExchange::compressed_matrices(layout, 2);
  ASSERT_EQ(matrices.size(), 2u);
  EXPECT_EQ(matrices[0].segment, 2);
  EXPECT_EQ(matrices[0].rows, 16);
  EXPECT_EQ(matrices[0].cols, 24);
  EXPECT_EQ(matrices[1].segment, 3);
  EXPECT_EQ(matrices[1].cols, 27);
  EXPECT_EQ(matrices[1].rank, 2);
  // rank is capped at min(m, n); at rate 0 every matrix goes, even at full rank.
  auto all = PowerSgdExchange::compressed_matrices(layout, 50, 0.0);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].rank, 3);  // [4, 3]
  EXPECT_EQ(all[3].rank, 3);  // [3, 100]
  EXPECT_EQ(make_bucket_exchange(powersgd(2), ErrorFeedbackKind::kEf, 4)->path(),
            std::string("powersgd"));
}

// At rank min(m, n) the span of P^ is the whole column space, so P^ P^T mean = mean up to the
// rounding of MGS (orthogonality lost ~ m kappa(P) eps) and of the three products (each entry a
// sum of at most max(m, n) terms); 2^12 eps |mean| bounds both with room for kappa(P) ~ 10^2.
// Rank 1 on the same rank-3 mean misses by its second singular value, which is O(|mean|).
TEST(PowerSgd, FullRankGivesTheDenseMean) {
  const int P = 3;
  const BucketLayout layout = layout_of({{3, 10}});
  const std::int64_t n = numel_of(layout);
  at::Tensor want = at::zeros({n}, at::kDouble);
  for (int r = 0; r < P; ++r) want += input_of(r, 0, n);
  want /= P;
  const double tol = 4096 * kEps * max_abs(want);
  for (int rank : {3, 1}) {
    std::vector<double> errors(P);
    spawn_ranks(P, [&](Communicator& comm) {
      PowerSgdExchange path(powersgd(rank), 0.0);
      path.set_layout(0, layout);
      at::Tensor mean = at::empty({n}, at::kDouble);
      exchange(comm, path, input_of(comm.rank(), 0, n), 0, 0, mean);
      errors[comm.rank()] = max_abs(mean - want);
    });
    for (double e : errors) {
      if (rank == 3) EXPECT_LE(e, tol) << "full rank";
      if (rank == 1) EXPECT_GT(e, 1e6 * tol) << "rank 1 on a rank-3 mean";
    }
  }
}

// M = u v^T on every rank: P = M Q spans u, the second column is dependent and zeroed, and
// P^ P^T M = M within the rounding of a few length-24 dot products.
TEST(PowerSgd, RankOneInputIsRecoveredAfterWarmStart) {
  const int P = 2;
  const std::int64_t m = 16, c = 24;
  at::Tensor u = at::arange(1, m + 1, at::kDouble).sin();
  at::Tensor v = at::arange(1, c + 1, at::kDouble).cos();
  at::Tensor M = at::outer(u, v).reshape({-1});
  const double tol = 64 * (m + c) * kEps * max_abs(M);
  spawn_ranks(P, [&](Communicator& comm) {
    PowerSgdExchange path(powersgd(2));
    path.set_layout(0, layout_of({{m, c}}));
    at::Tensor mean = at::empty({m * c}, at::kDouble), delta = at::empty({m * c}, at::kDouble);
    for (int step = 0; step < 2; ++step) exchange(comm, path, M, 0, step, mean, &delta);
    EXPECT_LE(max_abs(mean - M), tol);
    EXPECT_LE(max_abs(delta - M), tol);               // the EF residual M - delta is ~0
    EXPECT_GT(max_abs(path.state()[0].second), 0.0);  // Q's zeroed column was refilled
  });
}

// Q and the mean are bitwise the same on every rank after every step, float32 and float64.
TEST(PowerSgd, QueryAndMeanIdenticalOnEveryRank) {
  const int P = 3, T = 4;
  const BucketLayout layout = layout_of({{8}, {16, 24}, {4, 3}, {12, 5, 3}});
  const std::int64_t n = numel_of(layout);
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    std::vector<std::vector<at::Tensor>> means(P), queries(P);
    spawn_ranks(P, [&](Communicator& comm) {
      PowerSgdExchange path(powersgd(2));
      path.set_layout(5, layout);
      for (int t = 0; t < T; ++t) {
        at::Tensor mean = at::empty({n}, type);
        exchange(comm, path, input_of(comm.rank(), t, n, type), 5, t, mean);
        means[comm.rank()].push_back(mean);
        for (const auto& [name, q] : path.state()) queries[comm.rank()].push_back(q.clone());
      }
    });
    ASSERT_EQ(queries[0].size(), 2u * T);  // "5.q1", "5.q3" per step
    for (int r = 1; r < P; ++r) {
      for (int t = 0; t < T; ++t) EXPECT_TRUE(at::equal(means[r][t], means[0][t])) << r << t;
      for (std::size_t k = 0; k < queries[0].size(); ++k) {
        EXPECT_TRUE(at::equal(queries[r][k], queries[0][k])) << r << " " << k;
        EXPECT_EQ(queries[r][k].scalar_type(), type);
      }
    }
  }
}

// Two ring allreduces: of r(m) per matrix plus the dense elements, then of r(n) per matrix. A
// ring sends 2(P-1) chunks of floor or ceil(count / P) elements.
TEST(PowerSgd, BytesSentAreTwoRingsOfTheFactors) {
  const int P = 3;
  const BucketLayout layout = layout_of({{8}, {16, 24}, {4, 3}, {32, 20}}, /*gap=*/5);
  const std::int64_t n = numel_of(layout, 5);
  const std::int64_t dense = n - 16 * 24 - 32 * 20;
  const std::int64_t round1 = 2 * 16 + 2 * 32 + dense, round2 = 2 * 24 + 2 * 20;
  std::vector<std::uint64_t> sent(P);
  spawn_ranks(P, [&](Communicator& comm) {
    PowerSgdExchange path(powersgd(2));
    path.set_layout(0, layout);
    at::Tensor mean = at::empty({n}, at::kFloat);
    const std::uint64_t before = comm.bytes_sent();
    exchange(comm, path, input_of(comm.rank(), 0, n, at::kFloat), 0, 0, mean);
    sent[comm.rank()] = comm.bytes_sent() - before;
  });
  auto bound = [&](std::int64_t count, bool up) {
    return 2 * (P - 1) * (up ? (count + P - 1) / P : count / P);
  };
  const std::uint64_t low = 4 * (bound(round1, false) + bound(round2, false));
  const std::uint64_t high = 4 * (bound(round1, true) + bound(round2, true));
  for (int r = 0; r < P; ++r) {
    EXPECT_GE(sent[r], low) << r;
    EXPECT_LE(sent[r], high) << r;
    EXPECT_LT(sent[r], 4u * 2 * (P - 1) * n / P / 4) << "at least 4x fewer bytes than dense";
  }
}

// EF around the path: delta + new error == the compressed input per rank, and mean == the mean
// of the ranks' deltas (PowerSGD is linear), within the rounding of a few products.
TEST(PowerSgd, ErrorFeedbackIdentityAndMeanOfDeltas) {
  const int P = 3, T = 3;
  const BucketLayout layout = layout_of({{6}, {16, 24}, {10, 10}});
  const std::int64_t n = numel_of(layout);
  std::mutex mutex;
  std::vector<at::Tensor> deltas(P), means(P);
  spawn_ranks(P, [&](Communicator& comm) {
    PowerSgdExchange path(powersgd(2));
    path.set_layout(0, layout);
    ErrorFeedback feedback(ErrorFeedbackKind::kEf);
    at::Tensor mean = at::empty({n}, at::kDouble), delta = at::empty({n}, at::kDouble);
    for (int t = 0; t < T; ++t) {
      at::Tensor g = input_of(comm.rank(), t, n);
      at::Tensor input = feedback.prepare(0, g);
      exchange(comm, path, input, 0, t, mean, &delta);
      feedback.commit(0, g, input, delta);
      at::Tensor error = feedback.state()[0].second;  // "0.error"
      EXPECT_LE(max_abs(delta + error - input), 2 * kEps * max_abs(input)) << t;
    }
    std::lock_guard<std::mutex> lock(mutex);
    deltas[comm.rank()] = delta;
    means[comm.rank()] = mean;
  });
  at::Tensor mean_of_deltas = (deltas[0] + deltas[1] + deltas[2]) / P;
  EXPECT_LE(max_abs(means[0] - mean_of_deltas), 256 * 24 * kEps * max_abs(mean_of_deltas));
  EXPECT_GT(max_abs(deltas[0] - deltas[1]), 1e-3);  // the ranks really sent different things
}

// Saved after 3 steps and loaded into a fresh exchange, step 4 is bitwise the uninterrupted one.
TEST(PowerSgd, StateRoundTripContinuesBitwise) {
  const int P = 2;
  const BucketLayout layout = layout_of({{8}, {16, 24}, {32, 20}});
  const std::int64_t n = numel_of(layout);
  spawn_ranks(P, [&](Communicator& comm) {
    PowerSgdExchange path(powersgd(2, 11)), resumed(powersgd(2, 99));  // the seed must not matter
    path.set_layout(2, layout);
    resumed.set_layout(2, layout);
    at::Tensor mean = at::empty({n}, at::kDouble), again = at::empty({n}, at::kDouble);
    for (int t = 0; t < 3; ++t) exchange(comm, path, input_of(comm.rank(), t, n), 2, t, mean);
    const auto saved = path.state();
    ASSERT_EQ(saved.size(), 2u);
    EXPECT_EQ(saved[0].first, "2.q1");
    EXPECT_EQ(saved[1].first, "2.q2");
    resumed.load_state(saved);
    exchange(comm, path, input_of(comm.rank(), 3, n), 2, 3, mean);
    exchange(comm, resumed, input_of(comm.rank(), 3, n), 2, 3, again);
    EXPECT_TRUE(at::equal(mean, again));
    EXPECT_TRUE(at::equal(path.state()[1].second, resumed.state()[1].second));
  });
}

TEST(PowerSgd, LoadStateRejectsUnknownNamesAndShapes) {
  PowerSgdExchange path(powersgd(2));
  path.set_layout(0, layout_of({{8}, {16, 24}}));
  const at::Tensor q = at::zeros({24, 2}, at::kFloat);
  EXPECT_NO_THROW(path.load_state({{"0.q1", q}}));
  for (const char* name : {"0.q0", "1.q1", "0.q", "0.q1x", "0.server_error", "q1", "0."}) {
    EXPECT_THROW(path.load_state({{name, q}}), CheckpointError) << name;
  }
  EXPECT_THROW(path.load_state({{"0.q1", at::zeros({24, 3}, at::kFloat)}}), CheckpointError);
  EXPECT_THROW(path.load_state({{"0.q1", at::zeros({48}, at::kFloat)}}), CheckpointError);
  EXPECT_THROW(path.load_state({{"0.q1", at::zeros({24, 2}, at::kInt)}}), CheckpointError);
}

// A bias, a matrix below the rate threshold, a gap and a big matrix: the dense parts are the
// mean within the ring's rounding; the big matrix gets a rank-2 projection A = P^ P^T mean, so
// A^T (mean - A) = 0 and A differs from the mean (which has full rank).
TEST(PowerSgd, MixedLayoutSendsDensePartsExactlyAndProjectsTheMatrix) {
  const int P = 3;
  const BucketLayout layout = layout_of({{8}, {4, 3}, {16, 24}}, /*gap=*/3);
  const std::int64_t n = numel_of(layout, 3);
  at::Tensor want = at::zeros({n}, at::kDouble);
  for (int r = 0; r < P; ++r) want += input_of(r, 0, n);
  want /= P;
  at::Tensor got;
  spawn_ranks(P, [&](Communicator& comm) {
    PowerSgdExchange path(powersgd(2));
    path.set_layout(0, layout);
    at::Tensor mean = at::empty({n}, at::kDouble), delta = at::empty({n}, at::kDouble);
    at::Tensor x = input_of(comm.rank(), 0, n);
    exchange(comm, path, x, 0, 0, mean, &delta);
    const std::int64_t big = layout[2].offset;
    EXPECT_TRUE(at::equal(delta.narrow(0, 0, big), x.narrow(0, 0, big)));  // dense: sent as is
    EXPECT_TRUE(at::equal(delta.narrow(0, big + 384, 3), x.narrow(0, big + 384, 3)));
    if (comm.rank() == 0) got = mean;
  });
  const std::int64_t big = layout[2].offset;
  at::Tensor dense_got = at::cat({got.narrow(0, 0, big), got.narrow(0, big + 384, 3)});
  at::Tensor dense_want = at::cat({want.narrow(0, 0, big), want.narrow(0, big + 384, 3)});
  EXPECT_LE(max_abs(dense_got - dense_want), 2 * P * kEps * max_abs(dense_want));
  at::Tensor A = got.narrow(0, big, 384).view({16, 24});
  at::Tensor M = want.narrow(0, big, 384).view({16, 24});
  EXPECT_LE(max_abs(A.t().mm(M - A)), 1024 * kEps * max_abs(M) * max_abs(M) * 16);
  EXPECT_GT(max_abs(M - A), 0.1 * max_abs(M));
}

TEST(PowerSgd, EmptyBucketsAndBucketsWithoutMatrices) {
  const int P = 2;
  spawn_ranks(P, [&](Communicator& comm) {
    PowerSgdExchange path(powersgd(4));
    path.set_layout(0, {});
    path.set_layout(1, layout_of({{8}, {4, 3}}));
    at::Tensor empty = at::empty({0}, at::kFloat), out = at::empty({0}, at::kFloat);
    exchange(comm, path, empty, 0, 0, out);
    for (int bucket : {1, 2}) {  // 2: no layout set, all dense
      at::Tensor x = input_of(comm.rank(), 0, 20, at::kFloat), mean = at::empty({20}, at::kFloat);
      exchange(comm, path, x, bucket, 0, mean);
      at::Tensor want = (input_of(0, 0, 20) + input_of(1, 0, 20)) / P;
      EXPECT_LE(max_abs(mean.to(at::kDouble) - want), 4 * 1.2e-7 * max_abs(want)) << bucket;
    }
    EXPECT_TRUE(path.state().empty());
  });
}

}  // namespace
}  // namespace braid
