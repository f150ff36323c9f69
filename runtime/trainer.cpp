#include "runtime/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <dlfcn.h>
#include <fmt/core.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/log.h"
#include "runtime/checkpoint.h"
#include "runtime/data.h"
#include "runtime/data_parallel.h"
#include "runtime/metrics.h"
#include "runtime/models.h"
#include "runtime/world.h"

namespace braid {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

namespace {

// Torch's intra-op threads and, when LibTorch runs its linear layers on OpenBLAS (Debian's
// build does), OpenBLAS's own pool, which ignores at::set_num_threads: without this a
// "1-thread" rank keeps every core busy and ranks oversubscribe the machine.
void set_compute_threads(int threads) {
  at::set_num_threads(threads);
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(threads);
  }
}

double seconds_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double learning_rate(const OptimizerConfig& o, std::int64_t step, std::int64_t total_steps) {
  if (o.schedule == "constant") return o.lr;
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / o.warmup_steps;
  const double span = std::max<std::int64_t>(1, total_steps - o.warmup_steps);
  const double progress = std::min(1.0, (step - o.warmup_steps) / span);
  return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * progress)));
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerConfig& o,
                                                        std::vector<at::Tensor> parameters) {
  if (o.name == "adamw") {
    return std::make_unique<torch::optim::AdamW>(
        parameters, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  }
  return std::make_unique<torch::optim::SGD>(
      parameters, torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

// Sums `values` over ranks (float64).
std::vector<double> sum_over_ranks(Communicator& comm, std::vector<double> values) {
  comm.allreduce(Buffer{values.data(), static_cast<std::int64_t>(values.size()), DType::kFloat64},
                 ReduceOp::kSum, "rhd")
      .wait();
  return values;
}

struct Evaluation {
  double loss = 0, accuracy = 0;
};

// Each rank evaluates its shard of the test set; the sums are reduced, so every rank gets the
// exact whole-test-set result.
Evaluation evaluate(Model& model, const Dataset& test, Communicator& comm, std::int64_t batch) {
  torch::NoGradGuard no_grad;
  model.eval();
  at::Tensor indices = eval_indices(test.size(), comm.rank(), comm.size());
  double loss_sum = 0, correct = 0, positions = 0;
  for (std::int64_t start = 0; start < indices.numel(); start += batch) {
    at::Tensor idx = indices.narrow(0, start, std::min(batch, indices.numel() - start));
    at::Tensor x = test.inputs.index_select(0, idx), y = test.targets.index_select(0, idx);
    at::Tensor logits = model.forward(x);
    const auto n = static_cast<double>(model.positions(y));
    loss_sum += model.loss(logits, y).item<double>() * n;
    correct += static_cast<double>(model.correct(logits, y));
    positions += n;
  }
  model.train();
  auto totals = sum_over_ranks(comm, {loss_sum, correct, positions});
  return {totals[0] / totals[2], totals[1] / totals[2]};
}

void check_run_dir_free(const Config& config) {
  const fs::path dir(config.run.dir);
  if (config.train.resume == "auto" || !fs::exists(dir)) return;
  for (const char* entry : {"metrics.jsonl", "checkpoints", "config.yaml"}) {
    if (fs::exists(dir / entry)) {
      throw ConfigError(str_cat("run.dir '", config.run.dir, "' already holds a run (", entry,
                                "); set train.resume=auto to continue it, or choose another "
                                "run.dir (nothing was overwritten)"));
    }
  }
}

// A one-line progress bar for rank 0 on a terminal.
void draw_progress(std::int64_t step, std::int64_t total, double loss, double samples_per_s,
                   double eta_s) {
  constexpr int kWidth = 30;
  int filled = static_cast<int>(kWidth * step / std::max<std::int64_t>(total, 1));
  std::string bar(filled, '=');
  if (filled < kWidth) bar += '>' + std::string(kWidth - filled - 1, ' ');
  const auto eta = static_cast<long>(eta_s);
  fmt::print("\r[{}] {}/{} loss {:.4f} {:.0f} samples/s ETA {}:{:02d}   ", bar, step, total, loss,
             samples_per_s, eta / 60, eta % 60);
  std::fflush(stdout);
}

}  // namespace

TrainSummary train(const World& world, const Config& config) {
  const int rank = world.rank(), P = world.size();
  init_logging(rank, P, spdlog::level::from_str(config.runtime.log_level));
  set_compute_threads(static_cast<int>(config.runtime.threads));
  // CPU build: every rank computes on the CPU; a CUDA build picks cuda:<local rank> here.
  spdlog::debug("local rank {}, device cpu, {} torch threads", world.local_rank(),
                config.runtime.threads);

  // Start-up: everything that can be wrong with the input is found here, on every rank, before
  // anything is created; then all ranks agree.
  DataSplits data;
  std::shared_ptr<Model> model;
  std::exception_ptr startup_error;
  try {
    check_run_dir_free(config);
    data = load_data(config.data, config.model);
    torch::manual_seed(config.run.seed);
    model = make_model(config.model);
    DataPlan(data.train.size(), rank, P, config.data.batch_size, config.run.seed);  // size check
  } catch (const ConfigError&) {
    startup_error = std::current_exception();
  }
  const int failing = world.lowest_failing_rank(startup_error != nullptr);
  if (failing >= 0) {
    if (startup_error) std::rethrow_exception(startup_error);
    throw ConfigError(str_cat("start-up failed on rank ", failing));
  }

  DataParallelOptions dp_options;
  dp_options.strategy = config.sync.strategy;
  dp_options.algorithm = config.sync.algorithm;
  dp_options.bucket_mb = config.sync.bucket_mb;
  dp_options.overlap = config.sync.overlap;
  dp_options.cost_model = config.sync.cost_model;
  dp_options.timeout_s = config.runtime.timeout_s;
  dp_options.debug_checks = config.runtime.debug_checks;
  auto comm = make_communicator(world, dp_options);

  // Ranks must run the same config: compare hashes before touching the run directory.
  std::vector<std::int64_t> hashes(P);
  auto mine = static_cast<std::int64_t>(config.hash());
  comm->allgather(Buffer{&mine, 1, DType::kInt64}, Buffer{hashes.data(), P, DType::kInt64}).wait();
  for (int r = 1; r < P; ++r) {
    if (hashes[r] != hashes[0]) {
      throw ConfigError(str_cat("the resolved config differs between rank 0 and rank ", r,
                                " (hash ", hashes[0], " vs ", hashes[r],
                                "); every rank must read the same file and --set options"));
    }
  }
  const fs::path run_dir(config.run.dir);
  if (rank == 0) {
    fs::create_directories(run_dir);
    std::ofstream(run_dir / "config.yaml") << config.to_yaml();
  }
  comm->barrier().wait();

  DataParallel dp(comm, named_parameters(*model), dp_options);
  auto optimizer = make_optimizer(config.optimizer, model->parameters());
  Checkpointer checkpointer(config.run.dir, rank, P, resume_fingerprint(config));
  TrainPosition position;
  if (config.train.resume == "auto") {
    if (auto restored = checkpointer.load_latest(*comm, *model, *optimizer, dp.strategy())) {
      position = *restored;
      spdlog::info("resumed from {} at step {}", checkpointer.latest_path(), position.step);
    }
  }

  DataPlan plan(data.train.size(), rank, P, config.data.batch_size, config.run.seed);
  const std::int64_t steps_per_epoch = plan.steps_per_epoch();
  const std::int64_t total_steps =
      config.train.max_steps > 0 ? config.train.max_steps : config.train.epochs * steps_per_epoch;
  std::unique_ptr<MetricsLog> metrics;
  if (rank == 0) {
    metrics = std::make_unique<MetricsLog>((run_dir / "metrics.jsonl").string(),
                                           config.train.resume == "auto" ? position.step : -1);
  }
  // mpirun hands ranks a pseudo-terminal even when its own output is a file, so also ask for a
  // real terminal type before drawing a bar.
  const char* term = std::getenv("TERM");
  const bool progress_bar = rank == 0 && isatty(STDOUT_FILENO) && term && *term &&
                            std::string(term) != "dumb" && !std::getenv("CI");
  if (rank == 0) {
    spdlog::info(
        "training {} on {} ({} train / {} test samples), {} ranks x batch {}, {} steps "
        "({} per epoch), sync {} with {}",
        config.model.name, config.data.name, data.train.size(), data.test.size(), P,
        config.data.batch_size, total_steps, steps_per_epoch, config.sync.strategy,
        config.sync.algorithm);
  }

  const auto run_start = SteadyClock::now();
  const std::int64_t first_step = position.step;
  auto window_start = run_start;
  std::int64_t window_steps = 0;
  double window_loss = 0, window_comm_start = dp.stats().exposed_comm_s;
  double last_lr = config.optimizer.lr;
  std::int64_t last_checkpoint = -1;
  auto log_training = [&] {
    auto now = SteadyClock::now();
    const double seconds = seconds_between(window_start, now);
    const double loss = sum_over_ranks(*comm, {window_loss / window_steps})[0] / P;
    const SyncStats stats = dp.stats();
    const double samples_per_s = window_steps * config.data.batch_size * P / seconds;
    if (metrics) {
      metrics->write(
          {field("step", position.step), field("epoch", position.epoch), field("loss", loss),
           field("lr", last_lr), field("samples_per_s", samples_per_s),
           field("step_ms", 1e3 * seconds / window_steps),
           field("comm_ms", 1e3 * (stats.exposed_comm_s - window_comm_start) / window_steps),
           field("bytes_sent", stats.bytes_sent), field("bytes_recv", stats.bytes_recv)});
    }
    if (progress_bar) {
      double eta = (total_steps - position.step) * seconds / window_steps;
      draw_progress(position.step, total_steps, loss, samples_per_s, eta);
    } else if (rank == 0) {
      spdlog::info(
          "step {}/{} epoch {} loss {:.4f} lr {:.4g} {:.0f} samples/s step {:.1f} ms "
          "comm {:.2f} ms",
          position.step, total_steps, position.epoch, loss, last_lr, samples_per_s,
          1e3 * seconds / window_steps,
          1e3 * (stats.exposed_comm_s - window_comm_start) / window_steps);
    }
    window_start = now;
    window_steps = 0;
    window_loss = 0;
    window_comm_start = stats.exposed_comm_s;
  };
  auto log_evaluation = [&] {
    Evaluation e = evaluate(*model, data.test, *comm, config.train.eval_batch_size);
    if (metrics) {
      metrics->write({field("step", position.step), field("epoch", position.epoch),
                      field("test_loss", e.loss), field("test_accuracy", e.accuracy)});
    }
    if (rank == 0) {
      if (progress_bar) fmt::print("\n");
      spdlog::info("step {} evaluation: test loss {:.4f}, test accuracy {:.4f}", position.step,
                   e.loss, e.accuracy);
    }
    return e;
  };
  auto save_checkpoint = [&] {
    checkpointer.save(*comm, position, *model, *optimizer, dp.strategy());
    last_checkpoint = position.step;
  };

  const bool periodic_log = config.train.log_every > 0 || progress_bar;
  const std::int64_t log_every = config.train.log_every > 0 ? config.train.log_every : 10;
  while (position.step < total_steps) {
    if (position.step_in_epoch == steps_per_epoch) {
      ++position.epoch;
      position.step_in_epoch = 0;
    }
    at::Tensor idx = plan.batch_indices(position.epoch, position.step_in_epoch);
    at::Tensor x = data.train.inputs.index_select(0, idx);
    at::Tensor y = data.train.targets.index_select(0, idx);
    last_lr = learning_rate(config.optimizer, position.step, total_steps);
    set_learning_rate(*optimizer, last_lr);
    optimizer->zero_grad();
    at::Tensor loss = model->loss(model->forward(x), y);
    loss.backward();
    dp.step(*optimizer);
    ++position.step;
    ++position.step_in_epoch;
    ++window_steps;
    window_loss += loss.item<double>();

    if (periodic_log && (position.step % log_every == 0 || position.step == total_steps)) {
      log_training();
    }
    if (config.train.eval_every > 0 && position.step % config.train.eval_every == 0 &&
        position.step < total_steps) {
      log_evaluation();
    }
    if (config.train.checkpoint_every > 0 && position.step % config.train.checkpoint_every == 0) {
      save_checkpoint();
    }
  }
  const double train_seconds = seconds_between(run_start, SteadyClock::now());
  if (window_steps > 0) log_training();
  Evaluation final_eval = log_evaluation();
  if (last_checkpoint != position.step) save_checkpoint();

  TrainSummary summary;
  summary.steps = position.step;
  summary.test_loss = final_eval.loss;
  summary.test_accuracy = final_eval.accuracy;
  summary.samples_per_s =
      train_seconds > 0 ? (position.step - first_step) * config.data.batch_size * P / train_seconds
                        : 0;
  summary.bytes_sent = dp.stats().bytes_sent;
  summary.bytes_recv = dp.stats().bytes_recv;
  if (rank == 0) {
    std::ofstream(run_dir / "summary.json")
        << "{" << field("steps", summary.steps) << "," << field("test_loss", summary.test_loss)
        << "," << field("test_accuracy", summary.test_accuracy) << ","
        << field("samples_per_s", summary.samples_per_s) << ","
        << field("ranks", static_cast<std::int64_t>(P)) << ","
        << field("bytes_sent", summary.bytes_sent) << "," << field("bytes_recv", summary.bytes_recv)
        << "}\n";
    spdlog::info(
        "done: {} steps, test accuracy {:.4f}, test loss {:.4f}, {:.0f} samples/s on {} "
        "ranks, {:.1f} MB sent and {:.1f} MB received per rank; run directory {}",
        summary.steps, summary.test_accuracy, summary.test_loss, summary.samples_per_s, P,
        summary.bytes_sent / 1e6, summary.bytes_recv / 1e6, config.run.dir);
  }
  return summary;
}

}  // namespace braid
