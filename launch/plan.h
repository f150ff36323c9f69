// `braid plan CONFIG --ranks N --bandwidth B`: which way of keeping replicas in step is fastest
// for this config on N ranks over a given network, before the job runs. It measures on this
// machine what it can: the config's model on its data (forward and backward, the optimizer's
// step) and every candidate compressor's encode, decode and payload size on the model's own
// gradient buckets; it takes the network from --bandwidth, --latency and --link, and memory
// (ranks of one node, an unlimited link) from the cost model. runtime/planner.h predicts; this
// prints one ranked table, or one JSON object per row with --json.
//
// Under `mpirun -np R` every rank measures at once, so compute is timed with the node's R ranks
// sharing its cores, as in the job; rank 0 takes the slowest rank's and prints.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace braid {

class World;

struct PlanOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set
  int ranks = 0;
  int ranks_per_node = 1;
  std::string bandwidth;          // tc units, or unlimited
  std::string latency = "0";      // one way, per message
  std::string link = "switched";  // switched | shared
  std::string burst = "0";        // bytes the link passes at once after idling (tbf's burst)
  std::string cost_model;         // from braid bench allreduce --calibrate
  std::string compressors = "fp16,powersgd,dgc,topk,sign,qsgd";
  int steps = 10;  // timed compute steps (after 3 untimed)
  bool json = false;
};

// Phase 1, local: resolves the config, loads model and data (ConfigError for bad input).
// Phase 2 measures (every rank), predicts and prints (rank 0); exit code 0.
std::function<int()> prepare_plan(World& world, const PlanOptions& options);

}  // namespace braid
