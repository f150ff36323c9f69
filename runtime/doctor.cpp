#include "runtime/doctor.h"

#include <fmt/core.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "runtime/config.h"
#include "runtime/flight_file.h"

namespace braid {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A rank entering an operation this much after the median of the others is late (C4's
// "non-communication slow"): longer than any scheduling noise, shorter than the 2 s stall report.
constexpr std::int64_t kLateUs = 1'000'000;

std::map<int, FlightFile> read_records(const fs::path& run_dir) {
  std::map<int, FlightFile> files;
  const fs::path dir = run_dir / "flight";
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("rank-", 0) != 0 || entry.path().extension() != ".json") continue;
    FlightFile file = read_flight_file(entry.path());
    if (!files.empty() && files.begin()->second.world != file.world) {
      throw ConfigError(str_cat("flight records in ", dir.string(), " disagree on the job size (",
                                files.begin()->second.world, " and ", file.world,
                                " ranks): files of two runs are mixed"));
    }
    files.emplace(file.rank, std::move(file));
  }
  return files;
}

// runtime.timeout_s of <run dir>/config.yaml in microseconds; 0 when it cannot be read.
std::int64_t run_timeout_us(const fs::path& run_dir) {
  try {
    return static_cast<std::int64_t>(
        load_config((run_dir / "config.yaml").string()).runtime.timeout_s * 1e6);
  } catch (const std::exception&) {
    return 0;
  }
}

// The last training line's "straggler" of <run dir>/metrics.jsonl, if any.
std::optional<std::pair<int, double>> last_straggler(const fs::path& run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  std::optional<std::pair<int, double>> last;
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("loss")) continue;  // a torn line, or an evaluation
    last.reset();
    if (j.contains("straggler")) {
      last = std::make_pair(j["straggler"].value("rank", -1), j["straggler"].value("ratio", 0.0));
    }
  }
  return last;
}

const FlightRecord* record_at(const FlightFile& file, int channel, std::uint64_t seq) {
  for (const FlightChannel& c : file.channels) {
    if (c.id != channel) continue;
    for (const FlightRecord& r : c.records) {
      if (r.seq == seq) return &r;
    }
  }
  return nullptr;
}

// The first sequence number of `channel` this rank has not completed (one past its last record
// when it completed all it kept); nullopt when it kept none of that channel.
std::optional<std::uint64_t> first_open(const FlightFile& file, int channel) {
  for (const FlightChannel& c : file.channels) {
    if (c.id != channel || c.records.empty()) continue;
    for (const FlightRecord& r : c.records) {
      if (r.state != OpState::kCompleted) return r.seq;
    }
    return c.records.back().seq + 1;
  }
  return std::nullopt;
}

struct Point {
  int channel = -1;
  std::uint64_t seq = 0;
  // A stuck operation: the earliest any rank started it; a record written before then is stale.
  std::int64_t started_us = 0;
};

// The operation that failed or stalled first, by when it started: where the job got stuck.
// Records of operations that never started (cancelled behind it) do not count, and a stall
// that resolved (the operation completed on that rank: a loaded machine's hiccup) counts only
// when nothing else failed or stalled.
Point stuck_point(const std::map<int, FlightFile>& files) {
  Point best, resolved;
  for (const auto& [rank, file] : files) {
    for (const FlightChannel& c : file.channels) {
      for (const FlightRecord& r : c.records) {
        const bool stuck = r.state == OpState::kFailed || r.stalled;
        if (!stuck || r.started_us == 0) continue;
        Point& into = r.state == OpState::kCompleted ? resolved : best;
        if (into.channel < 0 || r.started_us < into.started_us) {
          into = {c.id, r.seq, r.started_us};
        }
      }
    }
  }
  return best.channel >= 0 ? best : resolved;
}

// Per channel, the lowest first-open sequence number over ranks: where they differ. Of the
// channels where some rank has not completed it, the one whose operation started earliest.
Point first_difference(const std::map<int, FlightFile>& files) {
  std::set<int> channels;
  for (const auto& [rank, file] : files) {
    for (const FlightChannel& c : file.channels) channels.insert(c.id);
  }
  Point best;
  std::int64_t best_started = 0;
  for (int channel : channels) {
    std::optional<std::uint64_t> low;
    for (const auto& [rank, file] : files) {
      if (auto open = first_open(file, channel)) low = low ? std::min(*low, *open) : *open;
    }
    if (!low) continue;
    std::int64_t started = INT64_MAX;
    bool open_somewhere = false;
    for (const auto& [rank, file] : files) {
      const FlightRecord* r = record_at(file, channel, *low);
      if (r && r->state != OpState::kCompleted) open_somewhere = true;
      if (r && r->started_us > 0) started = std::min(started, r->started_us);
    }
    if (open_somewhere && (best.channel < 0 || started < best_started)) {
      best = {channel, *low, 0};  // a snapshot: records written at slightly different times
      best_started = started;
    }
  }
  return best;
}

// What `file`'s rank was doing at (channel, seq).
// `timeout_us`: runtime.timeout_s of the run (0: unknown).
RankState state_of(const FlightFile& file, const Point& at, std::int64_t timeout_us) {
  RankState s;
  s.rank = file.rank;
  s.host = file.host;
  s.has_record = true;
  s.reason = file.reason;
  if (at.started_us > 0 && file.written_us < at.started_us) {
    // Written before the operation began (a SIGUSR1 earlier on), and never again since.
    s.has_record = false;
    s.doing = "wrote its record before the operation began and none since";
    return s;
  }
  const FlightRecord* r = record_at(file, at.channel, at.seq);
  // When this rank last saw the operation still unfinished: at its failure, or when it wrote.
  const std::int64_t seen = !r                              ? 0
                            : r->state == OpState::kStarted ? file.written_us
                            : r->state == OpState::kFailed  ? r->ended_us
                                                            : 0;
  if (seen > 0 && timeout_us > 0 && seen - r->started_us > timeout_us + kLateUs) {
    // Still running it past its own deadline: the process was not running (stopped, starved)
    // until it wrote this, after the others had failed.
    s.has_record = false;
    s.doing = "was in it longer than runtime.timeout_s allows: it was stopped or starved";
    return s;
  }
  if (!r || r->state == OpState::kQueued) {
    s.doing = "had not started it";
    auto open = first_open(file, at.channel);
    if (open && *open > 0) {
      if (const FlightRecord* last = record_at(file, at.channel, *open - 1)) {
        s.doing +=
            str_cat(" (its last completed operation was #", last->seq, ", ", last->text(), ")");
      }
    }
    return s;
  }
  s.started_us = r->started_us;
  s.waiting_for = r->state == OpState::kCompleted ? -1 : r->waiting_for;
  switch (r->state) {
    case OpState::kCompleted:
      s.doing = "completed it";
      break;
    case OpState::kStarted:
      s.doing = r->waiting_for >= 0 ? str_cat("was waiting for rank ", r->waiting_for)
                                    : std::string("was running it");
      break;
    default:
      s.doing = str_cat(
          "failed in it",
          r->waiting_for >= 0 ? str_cat(" waiting for rank ", r->waiting_for) : std::string(), ": ",
          r->error);
  }
  return s;
}

int node_of(const std::vector<std::string>& hosts, int ranks_per_node, int rank) {
  if (ranks_per_node > 0) return rank / ranks_per_node;
  std::vector<std::string> seen;
  for (const std::string& h : hosts) {
    if (std::find(seen.begin(), seen.end(), h) == seen.end()) seen.push_back(h);
  }
  const auto at = std::find(seen.begin(), seen.end(), hosts[static_cast<std::size_t>(rank)]);
  return static_cast<int>(at - seen.begin());
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ", ") + std::to_string(r);
  return out;
}

// "rank 3" or "ranks 1, 2".
std::string ranks_named(const std::vector<int>& ranks) {
  return (ranks.size() == 1 ? "rank " : "ranks ") + rank_list(ranks);
}

// The culprit, by the order in doctor.h.
std::optional<Culprit> find_culprit(const Diagnosis& d) {
  std::map<int, std::vector<int>> waited_by;
  for (const RankState& s : d.ranks) {
    if (s.waiting_for >= 0) waited_by[s.waiting_for].push_back(s.rank);
  }
  std::vector<int> silent = d.missing;
  silent.insert(silent.end(), d.stale.begin(), d.stale.end());
  for (int r : silent) {
    if (waited_by.count(r)) {
      return Culprit{r, "", 0,
                     str_cat("rank ", r,
                             " left no flight record of the failure, or one showing it was not "
                             "running (it died, was stopped or was killed) while ",
                             ranks_named(waited_by[r]), " waited for it")};
    }
  }
  for (const RankState& s : d.ranks) {
    if (s.has_record && s.doing.rfind("had not started it", 0) == 0) {
      return Culprit{s.rank, "", 0,
                     str_cat("rank ", s.rank,
                             " never joined the operation the "
                             "others were in: it ",
                             s.doing)};
    }
  }
  std::vector<std::int64_t> starts;
  for (const RankState& s : d.ranks) {
    if (s.started_us > 0) starts.push_back(s.started_us);
  }
  if (starts.size() >= 2) {
    std::nth_element(starts.begin(), starts.begin() + starts.size() / 2, starts.end());
    const std::int64_t median = starts[starts.size() / 2];
    const RankState* last = nullptr;
    for (const RankState& s : d.ranks) {
      if (s.started_us > 0 && (!last || s.started_us > last->started_us)) last = &s;
    }
    if (last && last->started_us - median > kLateUs) {
      return Culprit{last->rank, "", 0,
                     fmt::format("rank {} started the operation {:.1f} s after the median of the "
                                 "ranks: it was slow before it (computing, or stuck elsewhere)",
                                 last->rank, (last->started_us - median) / 1e6)};
    }
  }
  // The rank most ranks waited for (the C4 paper's majority over the communication matrix).
  int most = -1;
  std::size_t best = 0, with_best = 0;
  for (const auto& [rank, waiters] : waited_by) {
    if (waiters.size() > best) {
      most = rank;
      best = waiters.size();
      with_best = 0;
    }
    if (waiters.size() == best) ++with_best;
  }
  if (most >= 0 && with_best == 1 && best >= 2) {
    return Culprit{most, "", 0,
                   str_cat(ranks_named(waited_by[most]), " waited for rank ", most,
                           " in it, more than for any other rank")};
  }
  // Follow the waits: the rank at the end of the chain is the one everybody waits on.
  for (const RankState& s : d.ranks) {
    if (s.waiting_for < 0) continue;
    int at = s.waiting_for;
    std::set<int> seen{s.rank};
    while (seen.insert(at).second) {
      const RankState& next = d.ranks[static_cast<std::size_t>(at)];
      if (next.waiting_for < 0) break;
      at = next.waiting_for;
    }
    return Culprit{at, "", 0,
                   str_cat("rank ", at, " is at the end of the chain of waits (rank ", s.rank,
                           " waited for rank ", s.waiting_for, ")")};
  }
  return std::nullopt;
}

}  // namespace

Diagnosis diagnose(const fs::path& run_dir) {
  if (!fs::is_directory(run_dir)) {
    throw ConfigError(str_cat("run directory '", run_dir.string(), "' does not exist"));
  }
  Diagnosis d;
  d.run_dir = run_dir.string();
  const std::map<int, FlightFile> files = read_records(run_dir);
  d.straggler = last_straggler(run_dir);
  if (files.empty()) {
    d.ok = !d.straggler;
    d.finding = str_cat("no flight records in ", (run_dir / "flight").string(),
                        " (they are written when a run fails or is interrupted, or on SIGUSR1, "
                        "unless runtime.flight_recorder is 0)");
  } else {
    const FlightFile& any = files.begin()->second;
    d.world = any.world;
    const std::int64_t timeout_us = run_timeout_us(run_dir);
    Point at = stuck_point(files);
    if (at.channel < 0) at = first_difference(files);
    d.channel = at.channel;
    d.seq = at.seq;
    bool failed = false, stalled = false;
    for (int r = 0; r < d.world; ++r) {
      const auto file = files.find(r);
      if (file == files.end()) {
        d.missing.push_back(r);
        RankState s;
        s.rank = r;
        s.doing = "left no flight record";
        d.ranks.push_back(s);
        continue;
      }
      failed = failed || file->second.reason.rfind("failed", 0) == 0;
      for (const FlightChannel& c : file->second.channels) {
        for (const FlightRecord& rec : c.records) stalled = stalled || rec.stalled;
      }
      d.ranks.push_back(at.channel >= 0 ? state_of(file->second, at, timeout_us) : RankState{});
      d.ranks.back().rank = r;
      if (at.channel < 0) d.ranks.back().has_record = true;
      if (!d.ranks.back().has_record) d.stale.push_back(r);
      d.ranks.back().host = file->second.host;
      d.ranks.back().reason = file->second.reason;
      if (at.channel >= 0 && d.op.empty()) {
        if (const FlightRecord* rec = record_at(file->second, at.channel, at.seq)) {
          d.op = rec->text();
        }
      }
    }
    for (RankState& s : d.ranks) {
      if (s.host.empty() && static_cast<int>(any.hosts.size()) == d.world) {
        s.host = any.hosts[static_cast<std::size_t>(s.rank)];
      }
    }
    d.ok = !failed && !stalled && d.missing.empty() && !d.straggler;
    if (!d.ok && at.channel >= 0) d.culprit = find_culprit(d);
    if (d.culprit) {
      d.culprit->host = d.ranks[static_cast<std::size_t>(d.culprit->rank)].host;
      if (static_cast<int>(any.hosts.size()) == d.world) {
        d.culprit->node = node_of(any.hosts, any.ranks_per_node, d.culprit->rank);
      }
    }
  }
  if (d.culprit) {
    d.finding = d.culprit->why;
    d.action = str_cat("check host ", d.culprit->host, " (node ", d.culprit->node, ", rank ",
                       d.culprit->rank,
                       "); if it fails again, exclude it: launch/braid-restart does so after "
                       "--exclude-after failures in a row");
  } else if (d.straggler) {
    d.finding = fmt::format(
        "rank {} was a straggler at the end of the run: it computed {:.2f}x "
        "as long as the others",
        d.straggler->first, d.straggler->second);
    d.action = str_cat("check what else runs on rank ", d.straggler->first,
                       "'s host (CPU or GPU contention, thermal throttling)");
  } else if (!d.ok) {
    d.finding = "the run failed, but the records name no rank: see each rank's reason";
    d.action = "read the reasons below and the log of the job";
  } else if (d.finding.empty()) {
    d.finding = "nothing wrong found: every rank left a record and none failed or stalled";
  }
  return d;
}

std::string Diagnosis::text() const {
  std::string out = str_cat("braid doctor: ", run_dir, "\n");
  if (world > 0) {
    out += str_cat("ranks: ", world, ", flight records from ", world - missing.size());
    out += missing.empty() ? "" : str_cat(" (none from ", ranks_named(missing), ")");
    out += stale.empty()
               ? "\n"
               : str_cat("; ", ranks_named(stale), " wrote before the failure and not since\n");
  }
  if (channel >= 0) {
    out += str_cat("first operation where ranks differ: channel ", channel, ", sequence number ",
                   seq, op.empty() ? "" : ": " + op, "\n");
    for (const RankState& s : ranks) {
      // A failure's reason repeats what `doing` says; other reasons (a stall, a signal) do not.
      const bool say_reason = !s.reason.empty() && s.reason.rfind("failed", 0) != 0;
      out += str_cat("  rank ", s.rank, s.host.empty() ? "" : " (" + s.host + ")", ": ", s.doing,
                     say_reason ? "; its record was written on: " + s.reason : "", "\n");
    }
  }
  if (straggler) {
    out += fmt::format("straggler on the last training line: rank {} ({:.2f}x)\n", straggler->first,
                       straggler->second);
  }
  out += str_cat(ok ? "ok: " : "finding: ", finding, "\n");
  if (!action.empty()) out += str_cat("action: ", action, "\n");
  return out;
}

std::string Diagnosis::json() const {
  nlohmann::json j = {{"run_dir", run_dir}, {"ok", ok},       {"world", world},
                      {"missing", missing}, {"stale", stale}, {"finding", finding},
                      {"action", action}};
  if (channel >= 0) j["first_difference"] = {{"channel", channel}, {"seq", seq}, {"op", op}};
  j["ranks"] = nlohmann::json::array();
  for (const RankState& s : ranks) {
    nlohmann::json r = {{"rank", s.rank},
                        {"host", s.host},
                        {"has_record", s.has_record},
                        {"doing", s.doing},
                        {"reason", s.reason}};
    if (s.waiting_for >= 0) r["waiting_for"] = s.waiting_for;
    j["ranks"].push_back(std::move(r));
  }
  j["culprit"] = nullptr;
  if (culprit) {
    j["culprit"] = {{"rank", culprit->rank},
                    {"host", culprit->host},
                    {"node", culprit->node},
                    {"why", culprit->why}};
  }
  j["straggler"] = nullptr;
  if (straggler) j["straggler"] = {{"rank", straggler->first}, {"ratio", straggler->second}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace braid
