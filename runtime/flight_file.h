// Flight files: one rank's flight records (collectives/flight_recorder.h) as JSON, in
// <run dir>/flight/rank-RRRRR.json. Written when a collective fails or times out, when the run
// is interrupted, and on SIGUSR1 (runtime/flight_watch.h); read by `braid doctor`
// (runtime/doctor.h). The format is in docs/diagnosis.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "collectives/flight_recorder.h"

namespace braid {

struct FlightFile {
  int rank = 0;
  int world = 1;
  std::string host;
  std::int64_t pid = 0;
  std::string reason;              // why it was written: "timeout: ...", "SIGUSR1", "interrupted"
  std::int64_t written_us = 0;     // Unix time in microseconds
  std::vector<std::string> hosts;  // every rank's host, in rank order (empty: not known)
  int ranks_per_node = 0;          // runtime.ranks_per_node (0: nodes are hosts)
  std::vector<FlightChannel> channels;
};

// <run dir>/flight/rank-RRRRR.json
std::filesystem::path flight_file_path(const std::filesystem::path& run_dir, int rank);
// Whole or not at all (written to a temporary file and renamed); a rewrite replaces the file.
void write_flight_file(const std::filesystem::path& path, const FlightFile& file);
// ConfigError naming the file and what is wrong with it.
FlightFile read_flight_file(const std::filesystem::path& path);

}  // namespace braid
