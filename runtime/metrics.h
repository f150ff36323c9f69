// Metrics: <run.dir>/metrics.jsonl, one JSON object per line, written by rank 0 and flushed per
// line so a crash loses nothing already logged. Training lines carry step, epoch, loss (mean
// over ranks and over the steps since the previous line), lr, samples_per_s (all ranks
// together), step_ms, comm_ms (communication the training thread waited for, per step),
// bytes_sent and bytes_recv (this rank's totals so far); evaluation lines carry step, epoch,
// test_loss and test_accuracy. Field names are a contract with outside scripts.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace braid {

class MetricsLog {
 public:
  // Opens `path` for appending. With `keep_through_step` >= 0 (a resumed run), lines of later
  // steps, left by the interrupted run, are dropped first so the file reads as one run.
  MetricsLog(const std::string& path, std::int64_t keep_through_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // `fields` are preformatted "key":value pairs; empty strings (absent fields) are left out.
  void write(const std::vector<std::string>& fields);

 private:
  std::FILE* file_ = nullptr;
};

// "\"key\":value" with doubles printed exactly (17 significant digits).
std::string field(const char* key, double value);
std::string field(const char* key, std::int64_t value);
std::string field(const char* key, std::uint64_t value);

}  // namespace braid
