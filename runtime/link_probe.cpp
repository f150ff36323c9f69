#include "runtime/link_probe.h"

#include <algorithm>
#include <thread>

#include <spdlog/spdlog.h>

#include "collectives/collectives.h"
#include "common/error.h"

namespace braid {

namespace {

constexpr int kRepeats = 5;  // timed exchanges per pair and probe
// How long a timed exchange spins before it waits as other operations do (with yields and
// sleeps): the ranks not being timed sleep, so spinning takes a core from nobody, and a yield
// would add a scheduler's round trip to the time.
constexpr auto kSpinLimit = std::chrono::milliseconds(1);

void spin_sendrecv(OpContext& ctx, Buffer out, Buffer in, int peer) {
  auto received = ctx.recv(in, peer);
  auto sent = ctx.send(out, peer);
  const Clock::time_point give_up = Clock::now() + kSpinLimit;
  bool got = false, gone = false;
  while (!(got = got || received->test()) || !(gone = gone || sent->test())) {
    if (Clock::now() < give_up) continue;
    ctx.wait(*received);
    ctx.wait(*sent);
    return;
  }
}

}  // namespace

// The circle method over n = P rounded up to even: rank n - 1 stays, the others rotate.
int LinkProbe::partner(int i, int k, int world) {
  const int n = world + world % 2, m = n - 1;
  int p;
  if (i == m) {
    p = 0;
    while ((k - p + m) % m != p % m) ++p;  // the one whose circle partner is itself
  } else {
    p = ((k - i) % m + m) % m;
    if (p == i) p = m;
  }
  return p >= world ? -1 : p;
}

std::vector<std::pair<int, int>> LinkProbe::schedule(int world) {
  std::vector<std::pair<int, int>> pairs;
  for (int k = 0; k < rounds(world); ++k) {
    for (int i = 0; i < world; ++i) {
      if (const int p = partner(i, k, world); p > i) pairs.emplace_back(i, p);
    }
  }
  return pairs;
}

LinkProbe::LinkProbe(Communicator& comm, bool one_pair_at_a_time, std::size_t bytes, int window,
                     double factor)
    : rank_(comm.rank()),
      world_(comm.size()),
      one_pair_at_a_time_(one_pair_at_a_time),
      bytes_(bytes),
      window_(window),
      factor_(factor),
      channel_(comm.channel(comm.options())),
      out_(bytes),
      in_(bytes) {}

double LinkProbe::time_link(OpContext& ctx, int peer) {
  std::uint64_t hello = 0, back = 0;
  ctx.sendrecv(Buffer{&hello, 1, DType::kInt64}, peer, Buffer{&back, 1, DType::kInt64}, peer);
  const auto bytes = static_cast<std::int64_t>(bytes_);
  double fastest = 0;
  for (int repeat = 0; repeat < kRepeats; ++repeat) {
    const Clock::time_point start = Clock::now();
    spin_sendrecv(ctx, Buffer{out_.data(), bytes, DType::kUInt8},
                  Buffer{in_.data(), bytes, DType::kUInt8}, peer);
    const double took = std::chrono::duration<double>(Clock::now() - start).count();
    fastest = repeat == 0 ? took : std::min(fastest, took);
  }
  return fastest;
}

// One pair at a time: the first rank of each pair hands the turn to the ranks of the next, and
// the first rank of the last pair to every rank, so that no other exchange competes with the
// pair being timed for the host's cores, and waiting ranks sleep.
std::vector<double> LinkProbe::measure(OpContext& ctx) {
  std::vector<double> row(static_cast<std::size_t>(world_), 0.0);
  // Every rank has finished its step: none still computes beside the first pairs.
  barrier(ctx);
  const std::vector<std::pair<int, int>> pairs = schedule(world_);
  for (std::size_t j = 0; j <= pairs.size(); ++j) {
    const bool end = j == pairs.size();
    const auto [a, b] = end ? std::pair<int, int>{-1, -1} : pairs[j];
    const bool mine = rank_ == a || rank_ == b;
    if (one_pair_at_a_time_ && j > 0) {
      const int previous = pairs[j - 1].first;
      if (rank_ == previous) {
        for (int next = 0; next < world_; ++next) {
          if (next != previous && (end || next == a || next == b)) pass_turn(ctx, next);
        }
      } else if (end || mine) {
        await_turn(ctx, previous);
      }
    }
    if (mine) {
      const int peer = rank_ == a ? b : a;
      row[static_cast<std::size_t>(peer)] = time_link(ctx, peer);
    }
  }
  return row;
}

void LinkProbe::pass_turn(OpContext& ctx, int to) {
  std::uint64_t turn = 0;
  auto sent = ctx.send(&turn, sizeof turn, to);
  ctx.wait(*sent);
}

// Polls with short sleeps, not with the spins and yields of an operation's wait: the pair being
// timed needs the cores.
void LinkProbe::await_turn(OpContext& ctx, int from) {
  std::uint64_t turn = 0;
  auto received = ctx.recv(&turn, sizeof turn, from);
  ctx.waiting_for(from);
  while (!received->test()) {
    const std::atomic<bool>* aborted = ctx.aborted();
    if (Clock::now() >= ctx.deadline() || (aborted && aborted->load(std::memory_order_relaxed))) {
      ctx.fail_wait(str_cat("its turn in the link probe from rank ", from));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void LinkProbe::check_times(const std::vector<double>& times, int world) {
  for (std::size_t i = 0; i < times.size(); ++i) {
    if (!(times[i] >= 0 && times[i] < 3600)) {
      throw CommError(str_cat("link probe: rank ", i / static_cast<std::size_t>(world),
                              " reported a time of ", times[i], " s for its link to rank ",
                              i % static_cast<std::size_t>(world), " (a corrupt message)"));
    }
  }
}

std::vector<double> LinkProbe::link_times(const std::vector<double>& times, int world) {
  std::vector<double> link;
  for (int a = 0; a < world; ++a) {
    for (int b = a + 1; b < world; ++b) {
      link.push_back(std::max(times[static_cast<std::size_t>(a * world + b)],
                              times[static_cast<std::size_t>(b * world + a)]));
    }
  }
  return link;
}

std::vector<double> LinkProbe::link_ratios(const std::vector<double>& link) {
  std::vector<double> ratios(link.size(), 0.0);
  if (link.size() < 3) return ratios;  // nothing to compare one or two links with
  for (std::size_t i = 0; i < link.size(); ++i) {
    double slowest_other = 0;
    for (std::size_t j = 0; j < link.size(); ++j) {
      if (j != i) slowest_other = std::max(slowest_other, link[j]);
    }
    ratios[i] = slowest_other > 0 ? link[i] / slowest_other : 0.0;
  }
  return ratios;
}

// Each link's fastest time over the window: a slow link is slow in every probe, while a rank
// that was descheduled (more ranks than cores) slows a link in one probe and not the next.
void LinkProbe::judge(const std::vector<double>& times) {
  current_.reset();
  history_.push_back(link_times(times, world_));
  if (rank_ == 0 && spdlog::should_log(spdlog::level::debug)) {
    std::string us;
    for (double t : history_.back()) us += fmt::format(" {:.0f}", t * 1e6);
    spdlog::debug("link probe: link times (us; 0-1, 0-2, ..., then 1-2, ...):{}", us);
  }
  if (static_cast<int>(history_.size()) > window_) history_.pop_front();
  if (static_cast<int>(history_.size()) < window_) return;
  std::vector<double> fastest = history_.front();
  for (const std::vector<double>& probe : history_) {
    for (std::size_t i = 0; i < fastest.size(); ++i) fastest[i] = std::min(fastest[i], probe[i]);
  }
  const std::vector<double> ratios = link_ratios(fastest);
  std::size_t i = 0;
  for (int a = 0; a < world_; ++a) {
    for (int b = a + 1; b < world_; ++b, ++i) {
      if (ratios[i] > factor_ && (!current_ || ratios[i] > current_->ratio)) {
        current_ = SlowLinkReport{a, b, ratios[i]};
      }
    }
  }
}

std::optional<SlowLinkReport> LinkProbe::probe() {
  if (world_ < 3) return current_;
  const auto P = static_cast<std::int64_t>(world_);
  std::vector<double> times(static_cast<std::size_t>(P * P), 0.0);
  channel_
      ->submit({"link_probe", "pairwise", static_cast<std::int64_t>(bytes_), DType::kUInt8},
               [&](OpContext& ctx) {
                 std::vector<double> row = measure(ctx);
                 allgatherv(ctx, Buffer{row.data(), P, DType::kFloat64},
                            Buffer{times.data(), P * P, DType::kFloat64},
                            std::vector<std::int64_t>(static_cast<std::size_t>(P), P));
               })
      .wait();
  check_times(times, world_);
  judge(times);
  return current_;
}

}  // namespace braid
