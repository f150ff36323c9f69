// The `braid` executable. Exit codes (docs/errors.md): 0 success; 1 a failure at run time
// (communication, timeout, checkpoint, a bug); 2 bad input (command line, config, data path),
// reported once and returned by every rank.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <functional>

#include "common/error.h"
#include "launch/bench_allreduce.h"
#include "launch/bench_compress.h"
#include "launch/bench_train.h"
#include "launch/build_info.h"
#include "launch/commands.h"
#include "launch/plan.h"
#include "runtime/cost_model_file.h"
#include "runtime/world.h"

namespace {

// Before MPI is up, the launcher's environment tells the rank, so that a usage error is
// printed once rather than by every rank.
bool first_rank_by_environment() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    if (const char* value = std::getenv(name)) return std::atoi(value) == 0;
  }
  return true;
}

[[noreturn]] void fail_job(const braid::World& world, const std::exception& e) {
  fmt::print(stderr, "braid: error on rank {}: {}\n", world.rank(), e.what());
  std::fflush(stderr);
  braid::World::abort(1);
}

// Runs a command on every rank inside an MPI world, in two phases:
//  - prepare(world): local checks and loading, no communication. Its outcome is agreed on in
//    exactly this one place: bad input (ConfigError) on any rank makes every rank return 2,
//    with the message printed by the lowest rank that saw it.
//  - the returned run(): collective. A ConfigError there is raised by every rank alike (it
//    comes from a collective comparison), so rank 0 prints it and every rank returns 2.
// A NonFiniteError is raised by every rank alike too: rank 0 prints it and every rank returns 1.
// Any other error is printed by the rank that hit it and aborts the whole job with 1, so no
// peer waits forever.
using Run = std::function<int()>;
int run_in_world(int* argc, char*** argv, const std::function<Run(braid::World&)>& prepare) {
  braid::World world(argc, argv);
  Run run;
  std::string config_error;
  try {
    run = prepare(world);
  } catch (const braid::ConfigError& e) {
    config_error = e.what();
  } catch (const std::exception& e) {
    fail_job(world, e);
  }
  const int failing = world.lowest_failing_rank(!config_error.empty());
  if (failing >= 0) {
    if (failing == world.rank()) fmt::print(stderr, "braid: {}\n", config_error);
    return 2;
  }
  try {
    return run();
  } catch (const braid::ConfigError& e) {
    if (world.rank() == 0) fmt::print(stderr, "braid: {}\n", e.what());
    return 2;
  } catch (const braid::NonFiniteError& e) {
    // Every rank agreed and raised the same message: printed once, and no rank is left waiting.
    if (world.rank() == 0) fmt::print(stderr, "braid: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fail_job(world, e);
  }
}

// The options `braid train` and `braid config check` share, so that a command line checked is
// the command line trained.
void add_train_options(CLI::App* command, braid::TrainOptions& options) {
  command->add_option("config", options.config_path, "YAML config file")->required();
  command->add_option("--set", options.overrides, "Override a key: section.key=value")->take_all();
  command->add_option("--run-dir", options.run_dir, "Run directory (overrides run.dir)")
      ->check(CLI::Validator(
          [](std::string& dir) { return dir.empty() ? std::string("an empty path") : ""; }, "DIR"));
  command->add_flag("--debug-checks", options.debug_checks,
                    "Cross-check every collective across ranks (runtime.debug_checks=true)");
  command
      ->add_option("--progress", options.progress,
                   "Rank 0's output: a bar, plain lines, or auto (runtime.progress)")
      ->check(CLI::IsMember({"auto", "bar", "lines"}));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"braid: data-parallel training of LibTorch models over MPI"};
  app.set_version_flag("--version", braid::build_info);
  app.require_subcommand(1);

  auto* bench = app.add_subcommand("bench", "Benchmarks (run under mpirun)")->require_subcommand(1);
  braid::BenchAllreduceOptions ar;
  auto* bench_ar = bench->add_subcommand("allreduce", "Allreduce size sweep, like nccl-tests");
  bench_ar
      ->add_option("--algorithm,-a", ar.algorithm,
                   "ring | star | rhd | native | shm | hierarchical | auto | all")
      ->capture_default_str();
  bench_ar->add_option("--min-bytes,-b", ar.min_bytes, "Smallest message (accepts K, M, G)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  bench_ar->add_option("--max-bytes,-e", ar.max_bytes, "Largest message (accepts K, M, G)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  bench_ar->add_option("--factor,-f", ar.factor, "Size multiplier between rows")
      ->capture_default_str();
  bench_ar->add_option("--iters,-n", ar.iters, "Timed iterations per row")->capture_default_str();
  bench_ar
      ->add_option("--min-time-ms", ar.min_time_ms,
                   "Minimum timed duration per row; iterations double until reached")
      ->capture_default_str();
  bench_ar->add_option("--warmup,-w", ar.warmup, "Untimed iterations per row")
      ->capture_default_str();
  bench_ar
      ->add_option("--dtype,-d", ar.dtype, "float32 | float64 | float16 | bfloat16 | int32 | int64")
      ->capture_default_str();
  bench_ar->add_option("--op,-o", ar.op, "sum | avg | max | min")->capture_default_str();
  bench_ar->add_flag("--check,-c", ar.check, "Verify every result; exit 1 if any element is wrong");
  bench_ar->add_flag("--json", ar.json, "One JSON object per row");
  bench_ar->add_option("--calibrate", ar.calibrate,
                       "Measure alpha, beta, gamma for the auto cost model and write them to FILE");
  bench_ar->add_option(
      "--cost-model", ar.cost_model,
      "Cost model FILE (from --calibrate) for auto; rank 0's is used by all ranks");
  bench_ar->add_option("--timeout-s", ar.timeout_s, "Deadline of one collective")
      ->capture_default_str();
  bench_ar->add_flag("--debug-checks", ar.debug_checks,
                     "Cross-check every collective across ranks");
  bench_ar->add_option("--device", ar.device, "cpu | cuda (GPU buffers over NCCL; CUDA build)")
      ->capture_default_str();
  bench_ar
      ->add_option("--ranks-per-node", ar.ranks_per_node,
                   "Treat each N consecutive ranks as a node (0: the nodes MPI reports)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  bench_ar->add_flag("--registered", ar.registered,
                     "Allocate the buffer in shared memory (the fast path of shm, hierarchical)");
  bench_ar->add_flag("--stream", ar.stream,
                     "Only measure memory bandwidth: every rank at once runs a[i] += b[i] over "
                     "max-bytes (3 x bytes of traffic per pass); prints the total in GB/s");

  braid::BenchCompressOptions bc;
  auto* bench_compress = bench->add_subcommand(
      "compress", "Compressors' encode/decode time and exchange time and bytes against dense");
  bench_compress
      ->add_option(
          "--compressors", bc.compressors,
          "Comma list of compressors (default: all but none and powersgd, which needs a model: "
          "bench/compression.sh); a dense row is always added")
      ->capture_default_str();
  bench_compress->add_option("--min-bytes,-b", bc.min_bytes, "Smallest float32 bucket (K, M, G)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  bench_compress->add_option("--max-bytes,-e", bc.max_bytes, "Largest float32 bucket (K, M, G)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  bench_compress->add_option("--factor,-f", bc.factor, "Size multiplier between rows")
      ->capture_default_str();
  bench_compress->add_option("--ratio", bc.ratio, "topk, randomk: fraction kept")
      ->capture_default_str();
  bench_compress->add_option("--bits", bc.bits, "qsgd: bits per level")->capture_default_str();
  bench_compress->add_option("--error-feedback", bc.error_feedback, "none | ef | ef21 | econtrol")
      ->capture_default_str();
  bench_compress->add_option("--iters,-n", bc.iters, "Timed iterations per row (median)")
      ->capture_default_str();
  bench_compress->add_option("--warmup,-w", bc.warmup, "Untimed iterations per row")
      ->capture_default_str();
  bench_compress->add_flag("--json", bc.json, "One JSON object per row");
  bench_compress->add_option("--timeout-s", bc.timeout_s, "Deadline of one collective")
      ->capture_default_str();

  braid::BenchTrainOptions bt;
  auto* bench_train = bench->add_subcommand(
      "train", "Training throughput of a config: samples/s, compute vs exposed communication");
  bench_train->add_option("config", bt.config_path, "YAML config file")->required();
  bench_train->add_option("--steps", bt.steps, "Timed steps")->capture_default_str();
  bench_train->add_option("--warmup", bt.warmup, "Untimed steps before them")
      ->capture_default_str();
  bench_train->add_option("--set", bt.overrides, "Override a key: section.key=value")->take_all();
  bench_train->add_option("--baseline", bt.baseline,
                          "One-rank result FILE: written at np=1, read at np>1 for efficiency");
  bench_train->add_flag("--json", bt.json, "One JSON object instead of the table");

  braid::TrainOptions train_options;
  auto* train = app.add_subcommand("train", "Train a model from a YAML config (run under mpirun)");
  add_train_options(train, train_options);

  std::string doctor_dir;
  bool doctor_json = false;
  auto* doctor = app.add_subcommand(
      "doctor", "What went wrong in a run: the rank, host and operation, from its flight records");
  doctor->add_option("run_dir", doctor_dir, "Run directory")->required();
  doctor->add_flag("--json", doctor_json, "One JSON object (for scripts)");

  braid::PlanOptions plan;
  auto* plan_command = app.add_subcommand(
      "plan", "Which method is fastest for a config on N ranks and a given network, predicted");
  plan_command->add_option("config", plan.config_path, "YAML config file")->required();
  plan_command->add_option("--ranks", plan.ranks, "Ranks of the job to plan")->required();
  plan_command->add_option("--ranks-per-node", plan.ranks_per_node, "Ranks sharing one node")
      ->capture_default_str();
  plan_command
      ->add_option("--bandwidth", plan.bandwidth,
                   "Network rate in tc units (100mbit, 1gbit, 12.5mbps) or unlimited")
      ->required();
  plan_command->add_option("--latency", plan.latency, "One-way latency per message (5ms, 200us)")
      ->capture_default_str();
  plan_command
      ->add_option("--link", plan.link,
                   "switched: a link per node; shared: one medium for all (braid-slowlink)")
      ->check(CLI::IsMember({"switched", "shared"}))
      ->capture_default_str();
  plan_command
      ->add_option("--burst", plan.burst,
                   "Bytes the link passes at once after idling (tbf's burst: 131100, 128kb)")
      ->capture_default_str();
  plan_command->add_option("--cost-model", plan.cost_model,
                           "Cost model FILE (braid bench allreduce --calibrate) for memory phases");
  plan_command->add_option("--compressors", plan.compressors, "Comma list of compressors to plan")
      ->capture_default_str();
  plan_command->add_option("--steps", plan.steps, "Timed compute steps")->capture_default_str();
  plan_command->add_option("--set", plan.overrides, "Override a key: section.key=value")
      ->take_all();
  plan_command->add_flag("--json", plan.json, "One JSON object per row");

  auto* config = app.add_subcommand("config", "Config tools")->require_subcommand(1);
  braid::TrainOptions check_options;
  auto* check = config->add_subcommand("check", "Validate a config and print it resolved");
  add_train_options(check, check_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (!first_rank_by_environment()) return e.get_exit_code() == 0 ? 0 : 2;
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  if (bench_ar->parsed()) {
    return run_in_world(&argc, &argv, [&](braid::World& world) -> Run {
      if (!ar.cost_model.empty()) braid::load_cost_model(ar.cost_model);  // readable everywhere?
      return [&] { return braid::bench_allreduce(world, ar); };
    });
  }
  if (bench_compress->parsed()) {
    return run_in_world(&argc, &argv, [&](braid::World& world) -> Run {
      return braid::prepare_bench_compress(world, bc);
    });
  }
  if (bench_train->parsed()) {
    return run_in_world(&argc, &argv, [&](braid::World& world) -> Run {
      return braid::prepare_bench_train(world, bt);
    });
  }
  if (plan_command->parsed()) {
    return run_in_world(
        &argc, &argv, [&](braid::World& world) -> Run { return braid::prepare_plan(world, plan); });
  }
  if (train->parsed()) {
    return run_in_world(&argc, &argv, [&](braid::World& world) -> Run {
      return braid::prepare_train_command(world, train_options);
    });
  }
  if (check->parsed()) return braid::config_check_command(check_options);
  if (doctor->parsed()) return braid::doctor_command(doctor_dir, doctor_json);
  return 2;
}
