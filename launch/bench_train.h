// `braid bench train CONFIG`: the training throughput of a config on this job, for scaling
// studies. It trains the config (with the user's --set overrides) for `warmup` + `steps` steps
// in a temporary run directory, with periodic evaluation and checkpoints off, a small test set
// (data.test_limit=500 unless set) for the one evaluation and checkpoint every run ends with,
// and measures only the timed steps from the run's metrics.jsonl (rank 0's step_ms and comm_ms
// per logged window; the warm-up window is skipped). Rank 0 prints:
//   ranks, steps (timed), batch_per_rank, samples_per_s (all ranks), step_ms, comm_ms (the
//   communication rank 0 waited for, not hidden by compute), compute_ms = step_ms - comm_ms,
//   efficiency = samples_per_s / (ranks * samples_per_s of one rank).
// --json prints one object with exactly these keys (a contract with bench/scaling.sh).
//
// The one-rank baseline comes from the same command: run under np=1 with --baseline FILE it
// writes FILE; run under np>1 with --baseline FILE it reads FILE and refuses (exit 2) a
// baseline of another config or batch. Without a baseline, efficiency is 1 at one rank and
// unknown (null, "-") otherwise.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace braid {

class World;

struct BenchTrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set, applied after the benchmark's defaults
  std::int64_t steps = 50;             // timed steps
  std::int64_t warmup = 5;             // untimed steps before them
  std::string baseline;                // written at one rank, read at more
  bool json = false;
};

// Phase 1, local: resolves the config, prepares the run and reads the baseline (ConfigError
// for bad input). Returns phase 2, collective: trains, measures, prints; exit code 0.
std::function<int()> prepare_bench_train(World& world, const BenchTrainOptions& options);

}  // namespace braid
