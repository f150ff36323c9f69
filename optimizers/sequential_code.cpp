#include "optimizers/sequential_code.h"

#include <algorithm>

#include "common/error.h"

namespace braid {

namespace {

// The stragglers the inner gradient code tolerates: SR-SGC's s, M-SGC's lambda.
int inner_stragglers(const std::string& scheme, int burst, int window, int lambda) {
  if (scheme != "sr_sgc") return lambda;
  return (burst * lambda + window - 1 + burst - 1) / (window - 1 + burst);
}

// Fractional repetition where it exists (0/1 coefficients: exact), cyclic otherwise.
std::string inner_scheme(int n, int s) { return n % (s + 1) == 0 ? "fractional" : "cyclic"; }

// Checked before the inner code is built, so a bad value is named by its coding.* key.
int checked_inner(const std::string& scheme, int n, int burst, int window, int lambda) {
  if (scheme != "sr_sgc" && scheme != "m_sgc") {
    throw ConfigError(str_cat("coding.scheme: '", scheme, "' is not a sequential scheme (valid: ",
                              join(sequential_code_schemes()), ")"));
  }
  if (n < 2) {
    throw ConfigError(str_cat("sync.strategy sequential_coding needs at least 2 ranks, has ", n));
  }
  if (burst < 1) throw ConfigError(str_cat("coding.burst must be >= 1, got ", burst));
  if (window <= burst) {
    throw ConfigError(str_cat("coding.window must be > coding.burst (", burst, "), got ", window));
  }
  if (lambda < 1 || lambda >= n) {
    throw ConfigError(str_cat("coding.lambda must be in [1, ", n - 1,
                              "] (rank 0 decodes and is never a straggler), got ", lambda));
  }
  if (scheme == "sr_sgc" && (window - 1) % burst != 0) {
    throw ConfigError(str_cat("coding.scheme sr_sgc needs coding.burst to divide coding.window - 1",
                              " (burst ", burst, ", window ", window, "; e.g. window ",
                              burst * ((window - 1) / burst + 1) + 1, ")"));
  }
  return inner_stragglers(scheme, burst, window, lambda);
}

}  // namespace

const std::vector<std::string>& sequential_code_schemes() {
  static const std::vector<std::string> names = {"sr_sgc", "m_sgc"};
  return names;
}

SequentialCode::SequentialCode(const std::string& scheme, int n, int burst, int window, int lambda)
    : scheme_(scheme),
      n_(n),
      burst_(burst),
      window_(window),
      lambda_(lambda),
      code_(inner_scheme(n, checked_inner(scheme, n, burst, window, lambda)), n,
            inner_stragglers(scheme, burst, window, lambda)) {
  if (scheme_ == "sr_sgc") {
    delay_ = burst;
    slots_ = 1;
    groups_ = 1;
    chunks_ = 0;
  } else {
    delay_ = window - 2 + burst;
    slots_ = window - 1 + burst;
    groups_ = burst;
    chunks_ = window - 1;
  }
  units_ = n * chunks_ * (code_.stragglers() + 1) + n * groups_;
  next_ = schedule();
}

double SequentialCode::load() const {
  return static_cast<double>(slots_ * (code_.stragglers() + 1)) / units_;
}

const SequentialCode::Round& SequentialCode::round(std::int64_t r) const {
  const std::int64_t back = rounds_ - 1 - r;
  BRAID_CHECK(r >= 0 && back >= 0 && back < static_cast<std::int64_t>(history_.size()),
              "sequential code: round ", r, " is not in the history (", rounds_, " rounds, ",
              history_.size(), " kept)");
  return history_[history_.size() - 1 - back];
}

bool SequentialCode::straggled(std::int64_t r, int worker) const {
  return r >= 0 && !round(r).arrived[worker];
}

MiniTask SequentialCode::coded(std::int64_t job, int group, int worker) const {
  MiniTask task{job, group, -1, code_.partitions(worker), code_.weights(worker)};
  const int first = n_ * chunks_ * (code_.stragglers() + 1) + group * n_;
  for (int& unit : task.units) unit += first;
  return task;
}

MiniTask SequentialCode::chunk(std::int64_t job, int chunk, int worker) const {
  const int size = code_.stragglers() + 1, first = (worker * chunks_ + chunk) * size;
  MiniTask task{job, -1, chunk, {}, std::vector<double>(size, 1.0)};
  for (int u = 0; u < size; ++u) task.units.push_back(first + u);
  return task;
}

void SequentialCode::delivered(std::int64_t job, int worker, std::vector<char>& chunks,
                               std::vector<char>& groups) const {
  chunks.assign(chunks_, 0);
  groups.assign(groups_, 0);
  for (std::int64_t r = std::max<std::int64_t>(job, 0); r < rounds_ && r <= job + delay_; ++r) {
    const Round& past = round(r);
    if (!past.arrived[worker]) continue;
    for (const MiniTask& task : past.tasks[worker]) {
      if (task.job != job) continue;
      (task.group < 0 ? chunks[task.chunk] : groups[task.group]) = 1;
    }
  }
}

const std::vector<MiniTask>& SequentialCode::tasks(int worker) const {
  BRAID_CHECK(worker >= 0 && worker < n_, "worker ", worker, " of ", n_);
  return next_[static_cast<std::size_t>(worker)];
}

std::vector<std::vector<MiniTask>> SequentialCode::schedule() const {
  std::vector<std::vector<MiniTask>> all;
  for (int w = 0; w < n_; ++w) all.push_back(scheme_ == "sr_sgc" ? sr_tasks(w) : m_tasks(w));
  return all;
}

// The newest job's task, unless this worker is among the first v - s of the v workers that did
// not deliver job r - B in round r - B.
std::vector<MiniTask> SequentialCode::sr_tasks(int worker) const {
  const std::int64_t r = rounds_, old = r - burst_;
  if (old >= 0) {
    std::vector<int> missing;
    const Round& then = round(old);
    for (int w = 0; w < n_; ++w) {
      if (!then.arrived[w] || then.tasks[w][0].job != old) missing.push_back(w);
    }
    const int repeat = static_cast<int>(missing.size()) - code_.stragglers();
    for (int k = 0; k < repeat; ++k) {
      if (missing[k] == worker) return {coded(old, 0, worker)};
    }
  }
  return {coded(r, 0, worker)};
}

std::vector<MiniTask> SequentialCode::m_tasks(int worker) const {
  std::vector<MiniTask> out;
  std::vector<char> chunks, groups;
  for (int m = 0; m < slots_; ++m) {
    const std::int64_t job = rounds_ - m;
    if (job < 0) {
      out.emplace_back();
      continue;
    }
    if (m < chunks_) {
      out.push_back(chunk(job, m, worker));
      continue;
    }
    delivered(job, worker, chunks, groups);
    const auto missing = std::find(chunks.begin(), chunks.end(), 0);
    out.push_back(missing == chunks.end()
                      ? coded(job, m - chunks_, worker)
                      : chunk(job, static_cast<int>(missing - chunks.begin()), worker));
  }
  return out;
}

// At most lambda distinct stragglers in rounds r - W + 1 .. r, and none straggling now that
// also straggled in rounds r - W + 1 .. r - B.
bool SequentialCode::conforms(const std::vector<char>& now) const {
  BRAID_CHECK(static_cast<int>(now.size()) == n_, "straggler mask of ", now.size(), " for ", n_);
  const std::int64_t r = rounds_;
  int distinct = 0;
  for (int w = 0; w < n_; ++w) {
    bool recent = now[w] != 0, early = false;
    for (std::int64_t q = std::max<std::int64_t>(0, r - window_ + 1); q < r; ++q) {
      if (!straggled(q, w)) continue;
      recent = true;
      early = early || q <= r - burst_;
    }
    distinct += recent ? 1 : 0;
    if (now[w] && early) return false;
  }
  return distinct <= lambda_;
}

void SequentialCode::record(const std::vector<char>& arrived) {
  BRAID_CHECK(static_cast<int>(arrived.size()) == n_, "arrival mask of ", arrived.size(), " for ",
              n_);
  history_.push_back({arrived, std::move(next_)});
  ++rounds_;
  // decode and the schedule look back T rounds, conforms W - 1.
  const std::size_t keep = static_cast<std::size_t>(std::max(delay_ + 1, window_)) + 1;
  while (history_.size() > keep) history_.pop_front();
  next_ = schedule();
}

std::int64_t SequentialCode::due() const {
  const std::int64_t job = rounds_ - 1 - delay_;
  return job >= 0 ? job : -1;
}

std::optional<std::vector<std::vector<double>>> SequentialCode::decode(std::int64_t job) const {
  BRAID_CHECK(job >= 0 && job + delay_ < rounds_, "job ", job, " is not finished after ", rounds_,
              " rounds");
  std::vector<std::vector<int>> survivors(groups_);
  std::vector<char> chunks, groups;
  for (int w = 0; w < n_; ++w) {
    delivered(job, w, chunks, groups);
    if (std::find(chunks.begin(), chunks.end(), 0) != chunks.end()) return std::nullopt;
    for (int b = 0; b < groups_; ++b) {
      if (groups[b]) survivors[b].push_back(w);
    }
  }
  std::vector<std::vector<double>> a;
  for (const std::vector<int>& group : survivors) {
    if (static_cast<int>(group.size()) < n_ - code_.stragglers()) return std::nullopt;
    a.push_back(code_.decode(group));
  }
  return a;
}

}  // namespace braid
