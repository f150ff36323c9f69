// Doctor: what went wrong in a run, from the files its ranks left in the run directory: the
// flight records (<run dir>/flight/rank-RRRRR.json, runtime/flight_file.h) and metrics.jsonl.
// `braid doctor RUN_DIR` prints it; launch/braid-restart reads its JSON to pick the host to
// exclude. Any subset of ranks may have left no record (killed, stopped, or ended by mpirun
// before writing): the diagnosis says which and works with the rest.
//
// Per channel, the first sequence number some rank has not completed is where ranks differ.
// Where some operation failed or stalled, the one that started first is where the job got stuck;
// otherwise (a snapshot of a live job) the first operation some rank has not completed.
// The culprit is, in this order: a rank others waited for that left no record, only one from
// before that operation, or one showing it in it longer than runtime.timeout_s (dead, stopped or
// killed); a rank that never started that operation (it was
// computing, or stuck elsewhere); a rank that started it seconds after the others; the rank at the
// end of the chain of waits. A rank flagged as a straggler on the last training line of
// metrics.jsonl is reported too.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace braid {

struct RankState {
  int rank = 0;
  std::string host;
  bool has_record = false;
  std::string reason;    // why its file was written
  std::string doing;     // at the first differing operation: "completed it", "waiting for rank 2"
  int waiting_for = -1;  // -1: not waiting at that operation, or not known
  std::int64_t started_us = 0;  // when it started that operation (0: it did not)
};

struct Culprit {
  int rank = -1;
  std::string host;
  int node = 0;  // runtime.ranks_per_node's emulated node, else the host's index
  std::string why;
};

struct Diagnosis {
  std::string run_dir;
  int world = 0;
  bool ok = true;            // nothing wrong found
  std::vector<int> missing;  // ranks without a flight record
  // Ranks whose record predates the operation that got stuck (an earlier SIGUSR1, say): they
  // were stopped, dead or killed since.
  std::vector<int> stale;
  // The first operation where ranks differ (channel -1: none found).
  int channel = -1;
  std::uint64_t seq = 0;
  std::string op;
  std::vector<RankState> ranks;  // one per rank of the job, in rank order
  std::optional<Culprit> culprit;
  std::optional<std::pair<int, double>> straggler;  // rank and ratio, from metrics.jsonl
  std::string finding;  // one paragraph; "nothing wrong found ..." when ok
  std::string action;   // what to do next (empty when ok)

  std::string text() const;
  std::string json() const;
};

// ConfigError when the directory does not exist or a file in it is malformed.
Diagnosis diagnose(const std::filesystem::path& run_dir);

}  // namespace braid
