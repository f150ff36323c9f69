#include "runtime/link_probe.h"

#include <algorithm>

#include "collectives/collectives.h"

namespace braid {

namespace {

constexpr int kRepeats = 3;  // timed exchanges per pair and probe

double median_of(std::vector<double> values) {
  const std::size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid), values.end());
  if (values.size() % 2 == 1) return values[mid];
  return (values[mid] +
          *std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid))) /
         2;
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

LinkProbe::LinkProbe(Communicator& comm, std::size_t bytes, int window, double factor)
    : rank_(comm.rank()),
      world_(comm.size()),
      bytes_(bytes),
      window_(window),
      factor_(factor),
      channel_(comm.channel(comm.options())),
      history_(static_cast<std::size_t>(world_) * static_cast<std::size_t>(world_ - 1) / 2) {}

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

std::vector<double> LinkProbe::link_ratios(const std::vector<double>& times, int world) {
  std::vector<double> link;
  for (int a = 0; a < world; ++a) {
    for (int b = a + 1; b < world; ++b) {
      link.push_back(std::max(times[static_cast<std::size_t>(a * world + b)],
                              times[static_cast<std::size_t>(b * world + a)]));
    }
  }
  std::vector<double> ratios(link.size(), 0.0);
  if (link.size() < 3) return ratios;  // nothing to compare one or two links with
  for (std::size_t i = 0; i < link.size(); ++i) {
    std::vector<double> others = link;
    others.erase(others.begin() + static_cast<std::ptrdiff_t>(i));
    const double typical = median_of(others);
    ratios[i] = typical > 0 ? link[i] / typical : 0.0;
  }
  return ratios;
}

void LinkProbe::judge(const std::vector<double>& ratios) {
  current_.reset();
  std::size_t i = 0;
  for (int a = 0; a < world_; ++a) {
    for (int b = a + 1; b < world_; ++b, ++i) {
      std::deque<double>& history = history_[i];
      history.push_back(ratios[i]);
      if (static_cast<int>(history.size()) > window_) history.pop_front();
      if (static_cast<int>(history.size()) < window_) continue;
      std::vector<double> window(history.begin(), history.end());
      const auto lower = window.begin() + static_cast<std::ptrdiff_t>((window.size() - 1) / 2);
      std::nth_element(window.begin(), lower, window.end());
      if (*lower > factor_ && (!current_ || *lower > current_->ratio)) {
        current_ = SlowLinkReport{a, b, *lower};
      }
    }
  }
}

std::optional<SlowLinkReport> LinkProbe::probe() {
  if (world_ < 3) return current_;
  while (!pending_.empty() && pending_.front()->work.is_completed()) {
    pending_.front()->work.wait();  // rethrows a failed measurement: its peers are gone
    judge(link_ratios(pending_.front()->times, world_));
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
