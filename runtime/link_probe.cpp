#include "runtime/link_probe.h"

#include <algorithm>

#include "collectives/collectives.h"

namespace braid {

namespace {

constexpr int kRepeats = 3;  // timed exchanges per pair and probe

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

LinkProbe::LinkProbe(Communicator& comm, std::size_t bytes, int window, double factor)
    : rank_(comm.rank()),
      world_(comm.size()),
      bytes_(bytes),
      window_(window),
      factor_(factor),
      channel_(comm.channel(comm.options())) {}

LinkProbe::~LinkProbe() {
  if (pending_.empty()) return;
  channel_->abort("training ended with a link probe in flight");
  for (auto& m : pending_) {
    try {
      m->work.wait();
    } catch (const std::exception&) {
    }
  }
}

void LinkProbe::measure(OpContext& ctx, Measurement& m) const {
  std::uint64_t hello = 0, back = 0;
  const auto bytes = static_cast<std::int64_t>(bytes_);
  for (int k = 0; k < rounds(world_); ++k) {
    const int p = partner(rank_, k, world_);
    if (p < 0) continue;
    // The handshake first: the timed exchange starts with both ends there.
    ctx.sendrecv(Buffer{&hello, 1, DType::kInt64}, p, Buffer{&back, 1, DType::kInt64}, p);
    // The fastest of a few: a rank descheduled in one exchange (more ranks than cores) says
    // nothing about the link, a slow link slows every one.
    double fastest = 0;
    for (int repeat = 0; repeat < kRepeats; ++repeat) {
      const Clock::time_point start = Clock::now();
      ctx.sendrecv(Buffer{m.out.data(), bytes, DType::kUInt8}, p,
                   Buffer{m.in.data(), bytes, DType::kUInt8}, p);
      const double took = std::chrono::duration<double>(Clock::now() - start).count();
      fastest = repeat == 0 ? took : std::min(fastest, took);
    }
    m.row[static_cast<std::size_t>(p)] = fastest;
  }
  const std::int64_t P = world_;
  allgatherv(ctx, Buffer{m.row.data(), P, DType::kFloat64},
             Buffer{m.times.data(), P * P, DType::kFloat64},
             std::vector<std::int64_t>(static_cast<std::size_t>(P), P));
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
  while (!pending_.empty() && pending_.front()->work.is_completed()) {
    pending_.front()->work.wait();  // rethrows a failed measurement: its peers are gone
    judge(pending_.front()->times);
    pending_.pop_front();
  }
  const auto P = static_cast<std::size_t>(world_);
  auto m = std::make_unique<Measurement>();
  m->row.assign(P, 0.0);
  m->times.assign(P * P, 0.0);
  m->out.assign(bytes_, 0);
  m->in.assign(bytes_, 0);
  Measurement* raw = m.get();
  m->work =
      channel_->submit({"link_probe", "pairwise", static_cast<std::int64_t>(bytes_), DType::kUInt8},
                       [this, raw](OpContext& ctx) { measure(ctx, *raw); });
  pending_.push_back(std::move(m));
  return current_;
}

void LinkProbe::finish() {
  for (auto& m : pending_) m->work.wait();
  pending_.clear();
}

}  // namespace braid
