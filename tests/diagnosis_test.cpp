// Diagnosis without a job: the straggler detector on chosen compute times, flight files written
// and read back, and `braid doctor`'s verdict on flight records shaped like the failures it
// must tell apart (a dead rank, a rank that never joined, a late rank, a clean run).
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "collectives/transport_slow_link.h"
#include "common/error.h"
#include "runtime/cpu_wait.h"
#include "runtime/doctor.h"
#include "runtime/flight_file.h"
#include "runtime/link_probe.h"
#include "runtime/straggler_detector.h"
#include "spawn_ranks.h"

namespace braid {
namespace {

namespace fs = std::filesystem;

TEST(StragglerDetector, NamesARankSlowForTwentySteps) {
  StragglerDetector detector(4, 1.5, 20);
  const std::vector<double> slow = {1.0, 1.1, 3.0, 0.9};
  for (int step = 1; step < 20; ++step) EXPECT_FALSE(detector.add(slow)) << step;
  const auto flagged = detector.add(slow);
  ASSERT_TRUE(flagged);
  EXPECT_EQ(flagged->rank, 2);
  EXPECT_DOUBLE_EQ(flagged->ratio, 3.0);  // over the others' median, 1.0
}

// One normal step neither ends it nor, among normal ones, starts it; 16 of 20 steps decide.
TEST(StragglerDetector, OneStepChangesNothing) {
  StragglerDetector detector(2, 1.5, 20);
  for (int step = 0; step < 19; ++step) detector.add({1.0, 2.0});
  detector.add({1.0, 1.2});
  EXPECT_TRUE(detector.add({1.0, 2.0}));  // 19 of the last 20 slow
  for (int step = 0; step < 3; ++step) EXPECT_TRUE(detector.add({1.0, 1.0})) << step;
  EXPECT_FALSE(detector.add({1.0, 1.0}));  // 15 of 20 slow: no longer 80% of them
  StragglerDetector fresh(2, 1.5, 20);
  for (int step = 0; step < 19; ++step) fresh.add({1.0, 1.0});
  EXPECT_FALSE(fresh.add({1.0, 5.0}));
}

// Negative control: noise of +-30% around the same time on every rank never names anyone;
// a rank 3x as slow, with the same noise, is named.
TEST(StragglerDetector, NoiseIsNotAStraggler) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> noise(0.7, 1.3);
  StragglerDetector clean(8, 1.5, 20), slowed(8, 1.5, 20);
  std::optional<StragglerReport> found;
  for (int step = 0; step < 1000; ++step) {
    std::vector<double> times(8);
    for (double& t : times) t = noise(rng);
    EXPECT_FALSE(clean.add(times)) << step;
    times[5] = 3.0 * noise(rng);  // >= 2.1, above 1.5 x any median of the others (<= 1.3)
    if (auto f = slowed.add(times)) found = f;
  }
  ASSERT_TRUE(found);
  EXPECT_EQ(found->rank, 5);
}

TEST(StragglerDetector, StepsWhereNobodyComputedDoNotCount) {
  StragglerDetector detector(3, 1.5, 2);
  detector.add({1.0, 1.0, 3.0});
  EXPECT_FALSE(detector.add({0.0, 0.0, 0.0}));
  EXPECT_TRUE(detector.add({1.0, 1.0, 3.0}));
}

// Every pair of ranks meets exactly once, both ends agreeing, each rank once per round.
TEST(LinkProbe, TheTournamentMeetsEveryPairOnce) {
  for (int world = 2; world <= 9; ++world) {
    std::set<std::pair<int, int>> met;
    for (int k = 0; k < LinkProbe::rounds(world); ++k) {
      for (int i = 0; i < world; ++i) {
        const int p = LinkProbe::partner(i, k, world);
        if (p < 0) continue;
        ASSERT_NE(p, i);
        ASSERT_EQ(LinkProbe::partner(p, k, world), i) << world << " ranks, round " << k;
        met.insert({std::min(i, p), std::max(i, p)});
      }
    }
    EXPECT_EQ(met.size(), static_cast<std::size_t>(world * (world - 1) / 2)) << world;
  }
}

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Two threads pinned to one CPU, computing for 20 and 80 ms of CPU time: 100 ms of work on one
// core, so they wait on its run queue between them for at least the shorter one's work, and
// neither waits longer than its wall time less its CPU time (which a reading of the wrong field,
// the time on a CPU, would break for the longer one). Control: a thread that sleeps 50 ms is not
// waiting for a CPU (at most its wake-up is).
TEST(CpuWait, CountsTheTimeAThreadWaitsForACoreAndNotItsSleep) {
  if (!run_queue_wait_ns()) GTEST_SKIP() << "the kernel publishes no run-queue wait here";
  cpu_set_t mine;
  ASSERT_EQ(pthread_getaffinity_np(pthread_self(), sizeof mine, &mine), 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &mine)) ++cpu;
  struct Run {
    double work, waited = 0, wall = 0, cpu = 0;
    bool pinned = false;
  };
  Run runs[2] = {{0.02}, {0.08}};
  auto busy = [&](Run& run) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    run.pinned = pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
    const auto before = run_queue_wait_ns();
    const double wall = wall_seconds(), start = thread_cpu_seconds();
    while (thread_cpu_seconds() - start < run.work) {
    }
    run.waited = run_queue_seconds_since(before);
    run.cpu = thread_cpu_seconds() - start;
    run.wall = wall_seconds() - wall;
  };
  std::thread a(busy, std::ref(runs[0])), b(busy, std::ref(runs[1]));
  a.join();
  b.join();
  ASSERT_TRUE(runs[0].pinned && runs[1].pinned);
  EXPECT_GE(runs[0].waited + runs[1].waited, 0.015) << runs[0].waited << " + " << runs[1].waited;
  for (const Run& run : runs) {
    EXPECT_LE(run.waited, run.wall - run.cpu + 0.002)
        << "waited " << run.waited << " s of " << run.wall << " s, computing " << run.cpu << " s";
  }

  const auto before = run_queue_wait_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_LT(run_queue_seconds_since(before), 0.025);
}

// The order the probe takes the pairs in, one at a time or a round at a time: every pair once,
// round by round, each rank at most once per round.
TEST(LinkProbe, TheScheduleTakesEveryPairOnceRoundByRound) {
  for (int world = 2; world <= 9; ++world) {
    const auto pairs = LinkProbe::schedule(world);
    const std::set<std::pair<int, int>> unique(pairs.begin(), pairs.end());
    EXPECT_EQ(unique.size(), pairs.size()) << world;
    EXPECT_EQ(pairs.size(), static_cast<std::size_t>(world * (world - 1) / 2)) << world;
    std::size_t j = 0;
    for (int k = 0; k < LinkProbe::rounds(world); ++k) {
      std::set<int> busy;
      for (int i = 0; i < world; ++i) {
        const int p = LinkProbe::partner(i, k, world);
        if (p <= i) continue;
        ASSERT_LT(j, pairs.size());
        EXPECT_EQ(pairs[j++], std::make_pair(i, p)) << world << " ranks, round " << k;
        EXPECT_TRUE(busy.insert(i).second && busy.insert(p).second);
      }
    }
  }
}

// Thread ranks, one link delayed 3 ms per message (an exchange of 64 KB between threads takes
// microseconds): every rank names that link at the third probe, when the window is full, and
// not before; pairs taking turns (any rank count) or a round at a time (3 ranks: one pair and a
// bye per round, so no more spinning threads than a loaded 2-core machine runs).
TEST(LinkProbe, EveryRankNamesTheSlowLinkAtTheThirdProbe) {
  struct Case {
    int world;
    bool one_pair_at_a_time;
    std::pair<int, int> slow;
  };
  for (const Case& c : {Case{3, false, {0, 2}}, Case{3, true, {1, 2}}, Case{4, true, {1, 2}},
                        Case{5, true, {0, 4}}}) {
    SlowLinks links;
    links.pairs = {c.slow};
    links.delay = std::chrono::milliseconds(3);
    auto transports = ThreadTransport::create_world(c.world);
    for (auto& t : transports) t = std::make_shared<SlowLinkTransport>(t, links);
    std::vector<std::vector<std::optional<SlowLinkReport>>> seen(c.world);
    testing::spawn_ranks(
        c.world,
        [&](Communicator& comm) {
          LinkProbe probe(comm, c.one_pair_at_a_time);
          for (int i = 0; i < 3; ++i) seen[comm.rank()].push_back(probe.probe());
        },
        {}, transports);
    for (int r = 0; r < c.world; ++r) {
      SCOPED_TRACE(::testing::Message()
                   << c.world << " ranks, turns " << c.one_pair_at_a_time << ", rank " << r);
      EXPECT_FALSE(seen[r][0]);
      EXPECT_FALSE(seen[r][1]);
      ASSERT_TRUE(seen[r][2]);
      EXPECT_EQ(std::make_pair(seen[r][2]->a, seen[r][2]->b), c.slow);
      EXPECT_GT(seen[r][2]->ratio, 3.0);
    }
  }
}

TEST(LinkProbe, ACorruptTimeNamesItsRank) {
  std::vector<double> times(9, 0.001);
  EXPECT_NO_THROW(LinkProbe::check_times(times, 3));
  for (double bad : {-1.0, std::nan(""), 1e300}) {
    times[5] = bad;  // rank 1's link to rank 2
    try {
      LinkProbe::check_times(times, 3);
      ADD_FAILURE() << bad << " accepted";
    } catch (const CommError& e) {
      EXPECT_NE(std::string(e.what()).find("rank 1 reported"), std::string::npos) << e.what();
    }
  }
}

// Link (1, 2) of 4 ranks takes 10x as long, measured at either end: its ratio over the slowest
// other link is 10, theirs at most 1; with two ranks there is nothing to compare.
TEST(LinkProbe, ASlowLinkStandsOutOfTheMatrix) {
  const int P = 4;
  std::vector<double> times(P * P, 0.001);
  times[1 * P + 2] = 0.010;  // rank 1's measurement of the link to 2; rank 2's says 0.001
  const std::vector<double> ratios = LinkProbe::link_ratios(LinkProbe::link_times(times, P));
  ASSERT_EQ(ratios.size(), 6u);  // (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
  EXPECT_DOUBLE_EQ(ratios[3], 10.0);
  for (std::size_t i : {0u, 1u, 2u, 4u, 5u}) EXPECT_DOUBLE_EQ(ratios[i], 0.1) << i;
  EXPECT_EQ(LinkProbe::link_ratios(LinkProbe::link_times({0.001, 0.5, 0.5, 0.001}, 2)),
            std::vector<double>{0.0});
}

FlightRecord record(std::uint64_t seq, OpState state, int waiting_for = -1,
                    std::int64_t started_us = 0) {
  FlightRecord r;
  r.seq = seq;
  r.op = "allreduce";
  r.algorithm = "ring";
  r.count = 1000;
  r.state = state;
  r.waiting_for = waiting_for;
  r.queued_us = 1'000'000 + static_cast<std::int64_t>(seq) * 10;
  r.started_us = state == OpState::kQueued ? 0 : (started_us ? started_us : r.queued_us + 1);
  r.ended_us = state == OpState::kCompleted ? r.started_us + 5 : 0;
  if (state == OpState::kFailed) r.error = "timed out";
  return r;
}

class Doctor : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("braid_doctor_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Rank `rank` of 4 on host "node-<rank / 2>" (two ranks per node), with these records.
  // Written after its newest record's last event, or at `written_us` when given.
  void write(int rank, std::vector<FlightRecord> records, const std::string& reason,
             std::int64_t written_us = 0) {
    FlightFile file;
    file.rank = rank;
    file.world = 4;
    file.hosts = {"node-0", "node-0", "node-1", "node-1"};
    file.host = file.hosts[static_cast<std::size_t>(rank)];
    file.pid = 100 + rank;
    file.reason = reason;
    for (const FlightRecord& r : records) {
      file.written_us = std::max({file.written_us, r.queued_us, r.started_us, r.ended_us}) + 1;
    }
    if (written_us > 0) file.written_us = written_us;
    file.channels.push_back({0, "world", std::move(records)});
    write_flight_file(flight_file_path(dir_, rank), file);
  }
  fs::path dir_;
};

TEST_F(Doctor, FlightFilesReadBackAsWritten) {
  write(2, {record(7, OpState::kCompleted), record(8, OpState::kStarted, 3)}, "SIGUSR1");
  const FlightFile file = read_flight_file(flight_file_path(dir_, 2));
  EXPECT_EQ(file.rank, 2);
  EXPECT_EQ(file.world, 4);
  EXPECT_EQ(file.host, "node-1");
  EXPECT_EQ(file.reason, "SIGUSR1");
  ASSERT_EQ(file.channels.size(), 1u);
  ASSERT_EQ(file.channels[0].records.size(), 2u);
  const FlightRecord& r = file.channels[0].records[1];
  EXPECT_EQ(r.seq, 8u);
  EXPECT_EQ(r.state, OpState::kStarted);
  EXPECT_EQ(r.waiting_for, 3);
  EXPECT_EQ(r.count, 1000);
  EXPECT_EQ(r.started_us, record(8, OpState::kStarted).started_us);
}

TEST_F(Doctor, AMalformedFileIsAnErrorNamingIt) {
  fs::create_directories(dir_ / "flight");
  std::ofstream(flight_file_path(dir_, 1)) << "{\"format\": \"braid-flight-1\", \"rank\": ";
  try {
    diagnose(dir_);
    FAIL() << "a truncated flight record was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("rank-00001.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(diagnose(dir_ / "missing"), ConfigError);
}

TEST_F(Doctor, NothingWrongInACleanRecord) {
  for (int r = 0; r < 4; ++r) write(r, {record(5, OpState::kCompleted)}, "SIGUSR1");
  const Diagnosis d = diagnose(dir_);
  EXPECT_TRUE(d.ok) << d.text();
  EXPECT_FALSE(d.culprit);
}

// Rank 2 died: no record, and ranks waited for it at sequence number 9.
TEST_F(Doctor, NamesADeadRankOthersWaitedFor) {
  write(0, {record(8, OpState::kCompleted), record(9, OpState::kFailed, 3)}, "failed: timeout");
  write(1, {record(8, OpState::kCompleted), record(9, OpState::kStarted, 0)}, "stall: ...");
  write(3, {record(8, OpState::kCompleted), record(9, OpState::kStarted, 2)}, "stall: ...");
  const Diagnosis d = diagnose(dir_);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.missing, std::vector<int>{2});
  EXPECT_EQ(d.channel, 0);
  EXPECT_EQ(d.seq, 9u);
  ASSERT_TRUE(d.culprit) << d.text();
  EXPECT_EQ(d.culprit->rank, 2);
  EXPECT_EQ(d.culprit->host, "node-1");  // from the others' host lists
  EXPECT_NE(d.text().find("none from rank 2)"), std::string::npos) << d.text();
  EXPECT_NE(d.json().find("\"culprit\":{"), std::string::npos);
}

// Rank 1 wrote a record on SIGUSR1 at sequence number 4 and was stopped later: the others
// failed waiting for it at 9, and its old record (where 9 is not even queued) does not make it
// look like a rank that never joined.
TEST_F(Doctor, ARecordFromBeforeTheFailureIsSilence) {
  write(1, {record(3, OpState::kCompleted), record(4, OpState::kStarted, 2)}, "SIGUSR1");
  for (int r : {0, 2, 3}) {
    write(r, {record(8, OpState::kCompleted), record(9, OpState::kFailed, 1)}, "failed: timeout");
  }
  const Diagnosis d = diagnose(dir_);
  EXPECT_EQ(d.stale, std::vector<int>{1});
  EXPECT_EQ(d.seq, 9u);
  ASSERT_TRUE(d.culprit) << d.text();
  EXPECT_EQ(d.culprit->rank, 1);
  EXPECT_NE(d.culprit->why.find("waited for it"), std::string::npos) << d.culprit->why;
}

// A stall that resolved is not where the job got stuck: rank 0 was reported stalled in
// sequence number 6, which then completed on every rank; after rank 1's SIGUSR1 record (at 5)
// it was stopped, and the others failed waiting for it at 9.
TEST_F(Doctor, AStallThatResolvedIsNotTheFailure) {
  write(1, {record(5, OpState::kCompleted)}, "SIGUSR1", 1'000'055);
  FlightRecord hiccup = record(6, OpState::kCompleted);
  hiccup.stalled = true;
  for (int r : {0, 2, 3}) {
    write(r, {hiccup, record(8, OpState::kCompleted), record(9, OpState::kFailed, 1)},
          "failed: timeout");
  }
  const Diagnosis d = diagnose(dir_);
  EXPECT_EQ(d.seq, 9u) << d.text();
  ASSERT_TRUE(d.culprit) << d.text();
  EXPECT_EQ(d.culprit->rank, 1) << d.text();
}

// Rank 1 was stopped inside sequence number 9 and resumed after rank 0 had timed out waiting
// for it (runtime.timeout_s 6): its record, written 12 s into the operation, says it waited for
// rank 2, which had completed it. Being in it past its own deadline shows it was not running.
TEST_F(Doctor, ARankInAnOperationPastItsDeadlineWasNotRunning) {
  std::ofstream(dir_ / "config.yaml") << "runtime:\n  timeout_s: 6\n";
  const std::int64_t t = 50'000'000;
  FlightRecord timed_out = record(9, OpState::kFailed, 1, t);
  timed_out.ended_us = t + 6'000'000;
  write(0, {record(8, OpState::kCompleted), timed_out}, "failed: timeout");
  write(1, {record(8, OpState::kCompleted), record(9, OpState::kStarted, 2, t)}, "stall: ...",
        t + 12'000'000);
  write(2, {record(9, OpState::kCompleted, -1, t)}, "interrupted by signal 15", t + 7'000'000);
  write(3, {record(9, OpState::kCompleted, -1, t)}, "interrupted by signal 15", t + 7'000'000);
  const Diagnosis d = diagnose(dir_);
  ASSERT_TRUE(d.culprit) << d.text();
  EXPECT_EQ(d.culprit->rank, 1) << d.text();
  // Negative control: without the run's timeout the chain of waits blames rank 2.
  fs::remove(dir_ / "config.yaml");
  EXPECT_EQ(diagnose(dir_).culprit->rank, 2);
}

// Rank 1 is alive but never reached sequence number 9 (stuck computing).
TEST_F(Doctor, NamesARankThatNeverJoined) {
  write(0, {record(8, OpState::kCompleted), record(9, OpState::kFailed, 1)}, "failed: timeout");
  // Its record was written on SIGUSR1 once the others were stuck: it was alive, elsewhere.
  write(1, {record(7, OpState::kCompleted), record(8, OpState::kCompleted)}, "SIGUSR1", 90'000'000);
  write(2, {record(8, OpState::kCompleted), record(9, OpState::kStarted, 1)}, "stall: ...");
  write(3, {record(8, OpState::kCompleted), record(9, OpState::kStarted, 2)}, "stall: ...");
  const Diagnosis d = diagnose(dir_);
  ASSERT_TRUE(d.culprit) << d.text();
  EXPECT_EQ(d.culprit->rank, 1);
  EXPECT_NE(d.culprit->why.find("never joined"), std::string::npos) << d.culprit->why;
}

// Every rank started sequence number 9, rank 3 five seconds after the others.
TEST_F(Doctor, NamesARankThatStartedLate) {
  const std::int64_t t = 50'000'000;
  for (int r = 0; r < 3; ++r) {
    write(r, {record(9, OpState::kFailed, (r + 3) % 4, t + r)}, "failed: timeout");
  }
  write(3, {record(9, OpState::kStarted, 2, t + 5'000'000)}, "stall: ...");
  const Diagnosis d = diagnose(dir_);
  ASSERT_TRUE(d.culprit) << d.text();
  EXPECT_EQ(d.culprit->rank, 3);
  EXPECT_EQ(d.culprit->node, 1);
}

TEST_F(Doctor, RecordsOfTwoJobSizesAreRefused) {
  write(0, {record(1, OpState::kCompleted)}, "SIGUSR1");
  FlightFile other;
  other.rank = 1;
  other.world = 2;
  write_flight_file(flight_file_path(dir_, 1), other);
  EXPECT_THROW(diagnose(dir_), ConfigError);
}

TEST_F(Doctor, AStragglerOnTheLastTrainingLineIsAFinding) {
  std::ofstream(dir_ / "metrics.jsonl")
      << "{\"step\":20,\"loss\":1.0}\n"
      << "{\"step\":40,\"loss\":0.9,\"straggler\":{\"rank\":3,\"ratio\":2.5}}\n"
      << "{\"step\":40,\"test_loss\":0.9}\n";
  Diagnosis d = diagnose(dir_);
  EXPECT_FALSE(d.ok);
  ASSERT_TRUE(d.straggler);
  EXPECT_EQ(d.straggler->first, 3);
  std::ofstream(dir_ / "metrics.jsonl", std::ios::app) << "{\"step\":60,\"loss\":0.8}\n";
  d = diagnose(dir_);
  EXPECT_TRUE(d.ok) << d.text();  // it recovered
}

}  // namespace
}  // namespace braid
