#include "launch/bench_train.h"

#include <fmt/core.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>

#include <unistd.h>

#include "common/error.h"
#include "runtime/config.h"
#include "runtime/metrics.h"
#include "runtime/trainer.h"
#include "runtime/world.h"

namespace braid {

namespace fs = std::filesystem;

namespace {

// The raw value after "key": in a flat one-line JSON object written by MetricsLog or by this
// file (numbers and plain strings only), or nothing when the key is absent.
std::optional<std::string> json_value(const std::string& line, const std::string& key) {
  const std::string quoted = "\"" + key + "\":";
  const auto at = line.find(quoted);
  if (at == std::string::npos) return std::nullopt;
  const auto begin = at + quoted.size();
  const auto end = line.find_first_of(",}", begin);
  std::string value = line.substr(begin, end == std::string::npos ? end : end - begin);
  if (value.size() >= 2 && value.front() == '"') value = value.substr(1, value.size() - 2);
  return value;
}

// Totals of the timed windows: every training line of metrics.jsonl after the warm-up step,
// each weighted by the steps of its window (the last one may be shorter).
struct Timed {
  std::int64_t steps = 0;
  double step_ms_sum = 0, comm_ms_sum = 0;
};

Timed read_timed_windows(const fs::path& metrics, std::int64_t warmup) {
  std::ifstream in(metrics);
  BRAID_CHECK(in.good(), "cannot read ", metrics.string());
  Timed timed;
  std::int64_t previous = 0;
  for (std::string line; std::getline(in, line);) {
    const auto step_ms = json_value(line, "step_ms");
    if (!step_ms) continue;  // an evaluation line
    const std::int64_t step = std::stoll(json_value(line, "step").value());
    const std::int64_t window = step - previous;
    previous = step;
    if (step <= warmup) continue;
    timed.steps += window;
    timed.step_ms_sum += std::stod(*step_ms) * window;
    timed.comm_ms_sum += std::stod(json_value(line, "comm_ms").value()) * window;
  }
  return timed;
}

// What must match between a baseline and the runs compared with it: the whole resolved config
// except where it runs and for how long.
std::string config_fingerprint(Config config) {
  config.run.dir.clear();
  config.train.max_steps = 0;
  config.train.log_every = 0;
  return fmt::format("{:016x}", config.hash());
}

struct Baseline {
  std::int64_t batch_per_rank = 0;
  double samples_per_s = 0;
  std::string config_hash;
};

Baseline read_baseline(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw ConfigError(str_cat("baseline file '", path,
                              "' cannot be read; write it first with the same command at np=1"));
  }
  std::string line;
  std::getline(in, line);
  const auto ranks = json_value(line, "ranks");
  const auto batch = json_value(line, "batch_per_rank");
  const auto rate = json_value(line, "samples_per_s");
  const auto hash = json_value(line, "config_hash");
  if (!ranks || *ranks != "1" || !batch || !rate || !hash) {
    throw ConfigError(str_cat("baseline file '", path,
                              "' is not a one-rank result of `braid bench train --baseline`"));
  }
  return Baseline{std::stoll(*batch), std::stod(*rate), *hash};
}

void write_baseline(const std::string& path, std::int64_t batch, double samples_per_s,
                    const std::string& config_hash) {
  std::ofstream out(path);
  out << "{" << field("ranks", std::int64_t{1}) << "," << field("batch_per_rank", batch) << ","
      << field("samples_per_s", samples_per_s) << ",\"config_hash\":\"" << config_hash << "\"}\n";
  BRAID_CHECK(out.good(), "cannot write baseline file ", path);
}

struct Result {
  int ranks = 1;
  std::int64_t steps = 0, batch_per_rank = 0;
  double samples_per_s = 0, step_ms = 0, compute_ms = 0, comm_ms = 0;
  std::optional<double> efficiency;
};

void print(const Result& r, const std::string& config_path, std::int64_t warmup, bool json) {
  if (json) {
    const std::string efficiency = r.efficiency ? fmt::format("{:.6g}", *r.efficiency) : "null";
    fmt::print(
        "{{\"ranks\":{},\"steps\":{},\"batch_per_rank\":{},\"samples_per_s\":{:.6g},"
        "\"step_ms\":{:.6g},\"compute_ms\":{:.6g},\"comm_ms\":{:.6g},\"efficiency\":{}}}\n",
        r.ranks, r.steps, r.batch_per_rank, r.samples_per_s, r.step_ms, r.compute_ms, r.comm_ms,
        efficiency);
  } else {
    fmt::print("# braid bench train {}: {} ranks x batch {}, {} timed steps after {} warm-up\n",
               config_path, r.ranks, r.batch_per_rank, r.steps, warmup);
    fmt::print("# {:>5} {:>12} {:>10} {:>11} {:>9} {:>11}\n", "ranks", "samples/s", "step_ms",
               "compute_ms", "comm_ms", "efficiency");
    fmt::print("  {:>5} {:>12.1f} {:>10.2f} {:>11.2f} {:>9.2f} {:>11}\n", r.ranks, r.samples_per_s,
               r.step_ms, r.compute_ms, r.comm_ms,
               r.efficiency ? fmt::format("{:.3f}", *r.efficiency) : "-");
  }
  std::fflush(stdout);
}

// Removes the temporary run directory when the benchmark leaves, also by an error.
struct RemoveDir {
  fs::path dir;
  ~RemoveDir() {
    std::error_code ignored;
    if (!dir.empty()) fs::remove_all(dir, ignored);
  }
};

}  // namespace

std::function<int()> prepare_bench_train(World& world, const BenchTrainOptions& options) {
  if (options.steps < 1) throw ConfigError(str_cat("--steps must be >= 1, got ", options.steps));
  if (options.warmup < 1) {
    throw ConfigError(str_cat("--warmup must be >= 1 (the first window includes start-up), got ",
                              options.warmup));
  }
  // Defaults the user may override, then the user's, then what the measurement needs. run.dir
  // is a placeholder that does not exist until phase 2 agrees on the real one.
  std::vector<std::string> overrides = {"data.test_limit=500", "runtime.log_level=warn",
                                        "runtime.progress=lines"};
  overrides.insert(overrides.end(), options.overrides.begin(), options.overrides.end());
  const fs::path placeholder =
      fs::temp_directory_path() /
      fmt::format("braid-bench-train-unused-{}-{}", world.rank(), getpid());
  for (const std::string& forced :
       {"run.dir=" + placeholder.string(),
        str_cat("train.max_steps=", options.warmup + options.steps),
        str_cat("train.log_every=", options.warmup), std::string("train.eval_every=0"),
        std::string("train.checkpoint_every=0"), std::string("train.resume=never")}) {
    overrides.push_back(forced);
  }
  auto config = std::make_shared<Config>(load_config(options.config_path, overrides));
  const std::string fingerprint = config_fingerprint(*config);
  std::optional<Baseline> baseline;
  const fs::path baseline_dir = fs::path(options.baseline).parent_path();
  if (!options.baseline.empty() && world.size() == 1 && !baseline_dir.empty() &&
      !fs::is_directory(baseline_dir)) {
    throw ConfigError(str_cat("--baseline '", options.baseline, "': no directory '",
                              baseline_dir.string(), "' to write it in"));
  }
  if (!options.baseline.empty() && world.size() > 1) {
    baseline = read_baseline(options.baseline);
    if (baseline->batch_per_rank != config->data.batch_size ||
        baseline->config_hash != fingerprint) {
      throw ConfigError(str_cat("baseline file '", options.baseline,
                                "' was measured with another config or per-rank batch; rerun it "
                                "at np=1 with the same config and --set options"));
    }
  }
  auto prepared =
      std::make_shared<PreparedRun>(prepare_training(*config, world.rank(), world.size()));

  return [&world, options, config, prepared, baseline, fingerprint] {
    // Rank 0's random name for everyone: ranks on other nodes use the same path in their own
    // temporary directory, where they write their checkpoint shards.
    std::random_device random;
    const std::uint64_t token =
        world.all_values(std::uint64_t{random()} << 32 | std::uint64_t{random()})[0];
    RemoveDir run_dir{fs::temp_directory_path() / fmt::format("braid-bench-train-{:016x}", token)};
    config->run.dir = run_dir.dir.string();
    train(world, *config, std::move(*prepared));

    if (world.rank() == 0) {
      const Timed timed = read_timed_windows(run_dir.dir / "metrics.jsonl", options.warmup);
      BRAID_CHECK(timed.steps == options.steps, "metrics.jsonl holds ", timed.steps,
                  " timed steps, expected ", options.steps);
      Result r;
      r.ranks = world.size();
      r.steps = timed.steps;
      r.batch_per_rank = config->data.batch_size;
      r.step_ms = timed.step_ms_sum / timed.steps;
      r.comm_ms = timed.comm_ms_sum / timed.steps;
      r.compute_ms = r.step_ms - r.comm_ms;
      r.samples_per_s = 1e3 * r.ranks * r.batch_per_rank / r.step_ms;
      if (world.size() == 1) {
        r.efficiency = 1.0;
        if (!options.baseline.empty()) {
          write_baseline(options.baseline, r.batch_per_rank, r.samples_per_s, fingerprint);
        }
      } else if (baseline) {
        r.efficiency = r.samples_per_s / (r.ranks * baseline->samples_per_s);
      }
      print(r, options.config_path, options.warmup, options.json);
    }
    world.lowest_failing_rank(false);  // a barrier: nobody removes files a peer still reads
    return 0;
  };
}

}  // namespace braid
