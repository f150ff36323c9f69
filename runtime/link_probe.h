// LinkProbe: finds a link between two ranks that is several times slower than the others (the
// C4 paper's communication matrix), while training. Every `runtime.link_probe_every` steps the
// ranks stop between two steps and time exchanges of 64 KB (the fastest of 5) with every other
// rank, pair by pair in the rounds of a round-robin tournament (P - 1, or P when P is odd, one
// rank resting in each; every rank busy with one partner per round, so no link is measured
// while it shares its ends with another), after a
// small handshake per pair so that a partner's late arrival is not counted. Every rank's row of
// times is then allgathered, so every rank reaches the same verdict.
//
// Why between steps, and why one pair at a time on a crowded host (more ranks than cores): an
// exchange timed while the ranks compute, or while other pairs spin beside it, times the wait
// for a CPU at either end. Measured with the kernel's run-queue wait (/proc/thread-self/
// schedstat) on 4 ranks on 2 cores probing in the background: in 98% of 64 KB exchanges the two
// ends waited for a CPU more than 30% of the time, a median exchange took 113 us against 6-12 us
// without such waits, and a link slowed 5x (42-60 us) was lost in it.
//
// Why a probe rather than the ring's own timings: in a pipelined ring a receive also waits for
// everything upstream of its sender, so every link of the ring shows the pace of the slowest one.
//
// A link (a, b) is timed as the slower of its two ends' measurements, and as its fastest time
// over the last 3 probes (a rank descheduled in one probe slows a link once, a slow link slows
// every one); it is named while that exceeds 3 x every other link's (needs 3 or more ranks, so
// that there are other links to compare with).
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "collectives/communicator.h"

namespace braid {

struct SlowLinkReport {
  int a = -1, b = -1;  // a < b
  double ratio = 0;    // its fastest time of the last probes over the slowest other link's
};

class LinkProbe {
 public:
  // Collective: opens the probe's channel over `comm` (every rank, in the same order of
  // collectives). `one_pair_at_a_time`: the pairs of a round take turns (the same on every
  // rank; for a job with more ranks on a host than the host has cores).
  explicit LinkProbe(Communicator& comm, bool one_pair_at_a_time = false,
                     std::size_t bytes = std::size_t{64} << 10, int window = 3, double factor = 3);
  LinkProbe(const LinkProbe&) = delete;
  LinkProbe& operator=(const LinkProbe&) = delete;

  // Collective and blocking: measures every link, judges the last `window` measurements and
  // returns the slow link named now, if any.
  std::optional<SlowLinkReport> probe();

  // Pure: a CommError naming the rank whose row of times (seconds) holds a value that is not
  // finite, negative, or an hour or more: a peer's message is not trusted.
  static void check_times(const std::vector<double>& times, int world);
  // Pure: each link's time (a < b, in order: the slower of its two ends' measurements) from a
  // P x P matrix of times (row r: rank r's exchange times, seconds).
  static std::vector<double> link_times(const std::vector<double>& times, int world);
  // Pure: each link's time over the slowest of the other links'; all 0 with fewer than 3 links.
  static std::vector<double> link_ratios(const std::vector<double>& link);
  // Rank i's partner in round k (0 <= k < rounds(world)) of the round-robin tournament, or -1
  // for a bye (odd world).
  static int partner(int i, int k, int world);
  static int rounds(int world) { return world + world % 2 - 1; }
  // Every pair (a < b) once, in the order the probe measures them: round by round, by first rank.
  static std::vector<std::pair<int, int>> schedule(int world);

 private:
  // Rank `peer`'s link: the fastest of kRepeats timed exchanges, after a handshake.
  double time_link(OpContext& ctx, int peer);
  std::vector<double> measure(OpContext& ctx);
  void pass_turn(OpContext& ctx, int to);
  void await_turn(OpContext& ctx, int from);
  void judge(const std::vector<double>& times);

  int rank_, world_;
  bool one_pair_at_a_time_;
  std::size_t bytes_;
  int window_;
  double factor_;
  std::shared_ptr<Communicator> channel_;
  std::vector<char> out_, in_;
  std::deque<std::vector<double>> history_;  // the link times of the last `window_` probes
  std::optional<SlowLinkReport> current_;
};

}  // namespace braid
