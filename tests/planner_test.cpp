// The planner's model by its identities: bytes every algorithm sends, a shared medium carrying
// every sender's bytes, overlap with backward, the local strategies' rounds, and the units
// `braid plan` parses. Times are compared in float64 with a relative tolerance of 1e-9 (sums of
// a few dozen terms round far less); each identity would fail if the formula behind it changed.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "common/error.h"
#include "runtime/planner.h"

namespace braid {
namespace {

constexpr std::size_t kMB = 1000000;

PlanInputs four_ranks(double rate_bytes_per_s, bool shared = false) {
  PlanInputs in;
  in.ranks = 4;
  in.network.bandwidth_bytes_per_s = rate_bytes_per_s;
  in.network.shared = shared;
  in.memory.alpha_s = 0;  // only the network's latency and bandwidth count
  in.memory.gamma_s_per_byte = 0;
  in.compute_ms = 90;
  in.optimizer_ms = 10;
  in.bucket_bytes = {2 * kMB};
  return in;
}

const PlanRow& find(const std::vector<PlanRow>& rows, const std::string& strategy,
                    const std::string& compression, const std::string& algorithm) {
  const auto it = std::find_if(rows.begin(), rows.end(), [&](const PlanRow& r) {
    return r.strategy == strategy && r.compression == compression && r.algorithm == algorithm;
  });
  EXPECT_NE(it, rows.end()) << strategy << " " << compression << " " << algorithm;
  return *it;
}

void expect_close(double got, double want) { EXPECT_NEAR(got, want, 1e-9 * std::abs(want)); }

TEST(Planner, BytesEachAlgorithmSends) {
  const PlanInputs in = four_ranks(1e8);
  expect_close(allreduce_bytes_sent(in, "ring", 8 * kMB), 2.0 * 3 / 4 * 8 * kMB);
  expect_close(allreduce_bytes_sent(in, "rhd", 8 * kMB), 2.0 * 3 / 4 * 8 * kMB);
  expect_close(allreduce_bytes_sent(in, "star", 8 * kMB), 3 * 8 * kMB);  // the root's
  expect_close(allgather_bytes_sent(in, kMB), 3 * kMB);
}

TEST(Planner, RingTimeIsBytesOverBandwidthPlusLatencyPerRound) {
  PlanInputs in = four_ranks(1e8);
  in.network.latency_s = 1e-3;
  expect_close(allreduce_seconds(in, "ring", 8 * kMB), 6 * 1e-3 + 1.5 * 8 * kMB / 1e8);
  expect_close(allreduce_seconds(in, "rhd", 8 * kMB), 4 * 1e-3 + 1.5 * 8 * kMB / 1e8);
}

TEST(Planner, ASharedMediumCarriesEverySendersBytes) {
  const PlanInputs switched = four_ranks(1e8), shared = four_ranks(1e8, true);
  expect_close(allreduce_seconds(shared, "ring", 8 * kMB),
               4 * allreduce_seconds(switched, "ring", 8 * kMB));
  // The star's root sends and receives everything either way.
  expect_close(allreduce_seconds(shared, "star", 8 * kMB),
               allreduce_seconds(switched, "star", 8 * kMB));
}

// A token bucket refilled while the step computes lets its first bytes through at once: the
// exposed time falls by exactly burst / rate while the exchange is larger than the burst.
TEST(Planner, ABurstAfterComputeSavesItsBytes) {
  PlanInputs in = four_ranks(1e6, true);
  const double without = find(plan(in), "allreduce", "none", "ring").exposed_comm_ms;
  in.network.burst_bytes = 100000;
  expect_close(find(plan(in), "allreduce", "none", "ring").exposed_comm_ms, without - 100);
  in.network.burst_bytes = 1e9;  // more than the 100 ms of compute refills: 100 kB at 1 MB/s
  expect_close(find(plan(in), "allreduce", "none", "ring").exposed_comm_ms, without - 100);
  EXPECT_DOUBLE_EQ(parse_bytes("131100", "--burst"), 131100);
  EXPECT_DOUBLE_EQ(parse_bytes("128kb", "--burst"), 131072);
  EXPECT_THROW(parse_bytes("lots", "--burst"), ConfigError);
}

TEST(Planner, OneRankOnlyComputes) {
  PlanInputs in = four_ranks(1e6);
  in.ranks = 1;
  for (const PlanRow& r : plan(in)) {
    expect_close(r.step_ms, 100);
    EXPECT_NEAR(r.exposed_comm_ms, 0, 1e-9) << r.strategy << " " << r.algorithm;
  }
}

// One bucket is ready only at the end of backward: nothing hides its exchange. Many small
// buckets hide all but the last behind the backward that follows them.
TEST(Planner, OverlapHidesAllButTheLastBucket) {
  PlanInputs in = four_ranks(1e9);
  const double one = allreduce_seconds(in, "ring", 2 * kMB) * 1e3;
  expect_close(find(plan(in), "allreduce", "none", "ring").exposed_comm_ms, one);
  in.bucket_bytes.assign(20, kMB / 10);
  const PlanRow& many = find(plan(in), "allreduce", "none", "ring");
  expect_close(many.exposed_comm_ms, allreduce_seconds(in, "ring", kMB / 10) * 1e3);
  expect_close(many.comm_ms, 20 * allreduce_seconds(in, "ring", kMB / 10) * 1e3);
}

TEST(Planner, LocalStrategiesExchangeOncePerRound) {
  PlanInputs in = four_ranks(1e6);
  in.outer_steps = 10;
  const std::vector<PlanRow> rows = plan(in);
  const PlanRow& sync = find(rows, "allreduce", "none", "ring");
  const PlanRow& local = find(rows, "local_sgd", "none", "ring");
  expect_close(local.bytes_per_step, sync.bytes_per_step / 10);
  expect_close(local.peak_bytes, sync.bytes_per_step);
  const double t = allreduce_seconds(in, "ring", 2 * kMB);
  expect_close(local.step_ms, 100 + 1e3 * t / 10);
  // co2 hides the round's allreduce behind the next round's 10 steps of 100 ms.
  const PlanRow& co2 = find(rows, "co2", "none", "ring");
  expect_close(co2.step_ms, 100 + 1e3 * std::max(0.0, t - 1.0) / 10);
  EXPECT_GT(t, 1.0);  // at 1 MB/s the 3 MB take 3 s: co2 must expose the rest
}

TEST(Planner, StreamingDilocoSendsFragmentsInFourBits) {
  PlanInputs in = four_ranks(1e6);
  in.outer_steps = 10;
  in.fragments = 2;
  in.delay_steps = 1;
  const PlanRow& row = find(plan(in), "streaming_diloco", "none", "auto");
  EXPECT_EQ(row.exchange, "gather");        // 4 ranks x 0.5 bytes < 8: the gather is cheaper
  const double fragment = 2 * kMB / 4 / 2;  // elements
  expect_close(row.peak_bytes, 3 * (0.5 * fragment + 1));
  expect_close(row.bytes_per_step, 2 * row.peak_bytes / 10);
}

TEST(Planner, SlowerNetworksNeverMakeAStepFaster) {
  const std::vector<PlanRow> fast = plan(four_ranks(1e8)), slow = plan(four_ranks(1e7));
  for (const PlanRow& r : fast) {
    EXPECT_LE(r.step_ms, find(slow, r.strategy, r.compression, r.algorithm).step_ms);
  }
  for (std::size_t i = 1; i < fast.size(); ++i) EXPECT_LE(fast[i - 1].step_ms, fast[i].step_ms);
}

TEST(Planner, ParsesRatesAndDurations) {
  EXPECT_DOUBLE_EQ(parse_rate("100mbit", "--bandwidth"), 12.5e6);
  EXPECT_DOUBLE_EQ(parse_rate("1gbit", "--bandwidth"), 125e6);
  EXPECT_DOUBLE_EQ(parse_rate("12.5mbps", "--bandwidth"), 12.5e6);
  EXPECT_EQ(parse_rate("unlimited", "--bandwidth"), 0);
  EXPECT_DOUBLE_EQ(parse_seconds("5ms", "--latency"), 5e-3);
  EXPECT_DOUBLE_EQ(parse_seconds("200us", "--latency"), 2e-4);
  EXPECT_EQ(parse_seconds("0", "--latency"), 0);
  for (const char* bad : {"fast", "100", "-1mbit", "10mbits", ""}) {
    EXPECT_THROW(parse_rate(bad, "--bandwidth"), ConfigError) << bad;
  }
  for (const char* bad : {"5", "soon", "5min"}) {
    EXPECT_THROW(parse_seconds(bad, "--latency"), ConfigError) << bad;
  }
}

}  // namespace
}  // namespace braid
