// LinkProbe: finds a link between two ranks that is several times slower than the others (the
// C4 paper's communication matrix), while training. Every `runtime.link_probe_every` steps the
// ranks time exchanges of 64 KB (the fastest of 3) with every other rank, pair by pair in P - 1
// rounds (a round-robin tournament: every rank busy with one partner per round, so no link is
// measured while it shares its ends with another), after a small handshake per pair so that a
// partner's late arrival is not counted. Every rank's row of times is then allgathered, so every
// rank reaches the same verdict.
//
// Why a probe rather than the ring's own timings: in a pipelined ring a receive also waits for
// everything upstream of its sender, so every link of the ring shows the pace of the slowest one.
//
// It runs on a channel of its own and is never waited for while training: each rank starts one
// measurement per probe step (the same number on every rank) and judges those that have
// completed, in order, at later probe steps; one held up by a straggler just waits in the
// channel's queue. A link (a, b) is timed as the slower of its two ends' measurements, and as
// its fastest time over the last 3 probes (a descheduled rank slows a link in one probe, a slow
// link slows every one); it is named while that exceeds 3 x every other link's (needs 3 or more
// ranks, so that there are other links to compare with). Every other link, not their median:
// with more ranks than cores, pairs that share a core answer each other slowly, link or not.
#pragma once

#include <deque>
#include <memory>
#include <optional>
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
  // collectives).
  explicit LinkProbe(Communicator& comm, std::size_t bytes = std::size_t{64} << 10, int window = 3,
                     double factor = 3);
  ~LinkProbe();  // on an error path: aborts the channel and waits for what is in flight
  LinkProbe(const LinkProbe&) = delete;
  LinkProbe& operator=(const LinkProbe&) = delete;

  // Collective and asynchronous: judges the measurements that have completed, then starts the
  // next one. Returns the slow link named now, if any.
  std::optional<SlowLinkReport> probe();
  // Collective: waits for the measurements in flight (every rank started the same ones).
  void finish();

  // Pure: each link's time (a < b, in order: the slower of its two ends' measurements) from a
  // P x P matrix of times (row r: rank r's exchange times, seconds).
  static std::vector<double> link_times(const std::vector<double>& times, int world);
  // Pure: each link's time over the slowest of the other links'; all 0 with fewer than 3 links.
  static std::vector<double> link_ratios(const std::vector<double>& link);
  // Rank i's partner in round k (0 <= k < rounds(world)) of the round-robin tournament, or -1
  // for a bye (odd world).
  static int partner(int i, int k, int world);
  static int rounds(int world) { return world + world % 2 - 1; }

 private:
  struct Measurement {
    std::vector<double> row, times;  // this rank's times; every rank's (P x P)
    std::vector<char> out, in;
    Work work;
  };
  void measure(OpContext& ctx, Measurement& m) const;
  void judge(const std::vector<double>& times);

  int rank_, world_;
  std::size_t bytes_;
  int window_;
  double factor_;
  std::shared_ptr<Communicator> channel_;
  std::deque<std::unique_ptr<Measurement>> pending_;
  std::deque<std::vector<double>> history_;  // the link times of the last `window_` probes
  std::optional<SlowLinkReport> current_;
};

}  // namespace braid
