#include "runtime/trainer.h"

#include <fmt/core.h>
#include <fmt/format.h>
#include <sched.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>
#include <tuple>

#include "common/error.h"
#include "common/log.h"
#include "common/trace.h"
#include "optimizers/exchanging_optimizer.h"
#include "optimizers/robust_exchange.h"
#include "runtime/checkpoint.h"
#include "runtime/compute_threads.h"
#include "runtime/config_options.h"
#include "runtime/cost_model_file.h"
#include "runtime/cpu_wait.h"
#include "runtime/crash_injection.h"
#include "runtime/data_parallel.h"
#include "runtime/device.h"
#include "runtime/evaluation.h"
#include "runtime/flight_watch.h"
#include "runtime/global_parameters.h"
#include "runtime/initial_weights.h"
#include "runtime/interrupt.h"
#include "runtime/link_probe.h"
#include "runtime/metrics.h"
#include "runtime/model_export.h"
#include "runtime/optimizer_factory.h"
#include "runtime/progress.h"
#include "runtime/resume_fingerprint.h"
#include "runtime/run_lock.h"
#include "runtime/straggler.h"
#include "runtime/straggler_detector.h"
#include "runtime/strategy_factory.h"
#include "runtime/token_data.h"
#include "runtime/torchscript_model.h"
#include "runtime/world.h"

namespace braid {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

// Stall reports (FlightWatch): after max(kStallMinSeconds, kStallMedians x the median of the
// last kStallWindowSteps steps), from the kStallWarmupSteps-th step on.
constexpr double kStallMinSeconds = 2.0;
constexpr double kStallMedians = 5.0;
constexpr std::size_t kStallWindowSteps = 100;
constexpr std::size_t kStallWarmupSteps = 3;
// The steps over which a rank is judged a straggler (runtime/straggler_detector.h).
constexpr int kStragglerSteps = 20;

namespace {

double seconds_since(SteadyClock::time_point a) {
  return std::chrono::duration<double>(SteadyClock::now() - a).count();
}

void check_run_dir_free(const Config& config) {
  const fs::path dir(config.run.dir);
  if (fs::exists(dir) && !fs::is_directory(dir)) {
    throw ConfigError(str_cat("run.dir '", config.run.dir, "' is a file, not a directory"));
  }
  if (!fs::exists(dir)) return;
  RunDirLock::check_free(config.run.dir);  // a running job: name it, not its files
  if (config.train.resume == "auto") return;
  for (const char* entry : {"metrics.jsonl", "checkpoints", "config.yaml"}) {
    if (fs::exists(dir / entry)) {
      throw ConfigError(str_cat("run.dir '", config.run.dir, "' already holds a run (", entry,
                                "); set train.resume=auto to continue it, or choose another "
                                "run.dir (nothing was overwritten)"));
    }
  }
}

// A resumed run may change what its state does not depend on (the learning rate, say), on
// purpose or by mistake: say which, with both values. Rank 0, before config.yaml is rewritten.
void warn_about_changed_keys(const fs::path& previous, const Config& now) {
  Config before;
  try {
    before = load_config(previous.string());
  } catch (const std::exception&) {
    return;  // written by another braid version, or edited: nothing to compare against
  }
  const std::vector<std::tuple<const char*, double, double>> keys = {
      {"optimizer.lr", before.optimizer.lr, now.optimizer.lr},
      {"optimizer.momentum", before.optimizer.momentum, now.optimizer.momentum},
      {"optimizer.weight_decay", before.optimizer.weight_decay, now.optimizer.weight_decay},
      {"optimizer.clip_norm", before.optimizer.clip_norm, now.optimizer.clip_norm},
      {"optimizer.min_lr_ratio", before.optimizer.min_lr_ratio, now.optimizer.min_lr_ratio}};
  std::string changed;
  for (const auto& [key, old_value, new_value] : keys) {
    if (old_value != new_value) {
      changed +=
          fmt::format("{}{} {} -> {}", changed.empty() ? "" : ", ", key, old_value, new_value);
    }
  }
  if (!changed.empty()) {
    spdlog::warn("resumed with changed settings (the run continues with the new values): {}",
                 changed);
  }
}

// Collective (one small allreduce): settings that run but probably not as meant. The busiest
// node's rank count comes from the highest local rank.
void warn_about_settings(const World& world, Communicator& comm, const Config& config) {
  std::int64_t ranks_here = world.local_rank() + 1;
  comm.allreduce(Buffer{&ranks_here, 1, DType::kInt64}, ReduceOp::kMax, "rhd").wait();
  if (world.rank() != 0) return;
  const auto cores = static_cast<std::int64_t>(std::thread::hardware_concurrency());
  if (cores > 0 && ranks_here * config.runtime.threads > cores) {
    spdlog::warn(
        "{} ranks on a node x runtime.threads {} = {} threads on {} cores: ranks will wait for "
        "each other's threads; lower runtime.threads",
        ranks_here, config.runtime.threads, ranks_here * config.runtime.threads, cores);
  }
  if (config.optimizer.schedule == "warmup_cosine" && config.train.max_steps > 0 &&
      config.optimizer.warmup_steps > config.train.max_steps) {
    spdlog::warn(
        "optimizer.warmup_steps {} exceeds train.max_steps {}: the learning rate never reaches "
        "optimizer.lr",
        config.optimizer.warmup_steps, config.train.max_steps);
  }
}

// DGC's sparsity warm-up is counted in epochs (the paper's 4 of 90+); a short run can end inside
// it and never send at compression.ratio.
void warn_about_dgc_warmup(const Config& config, std::int64_t steps_per_epoch,
                           std::int64_t total_steps) {
  const std::int64_t warmup = config.compression.warmup_epochs * steps_per_epoch;
  if (config.compression.name != "dgc" || warmup < total_steps) return;
  spdlog::warn(
      "compression.warmup_epochs {} ({} steps) spans the whole run of {} steps: dgc never keeps "
      "as little as compression.ratio {}; lower compression.warmup_epochs for a short run",
      config.compression.warmup_epochs, warmup, total_steps, config.compression.ratio);
}

// Collective: ranks must run the same config (and cost model) before anything depends on it:
// the communicator itself (debug checks, timeout) and the run directory. So it is compared
// through the World, before any Communicator exists.
void check_same_config(const World& world, const Config& config) {
  const std::vector<std::uint64_t> hashes = world.all_values(config.hash());
  for (std::size_t r = 1; r < hashes.size(); ++r) {
    if (hashes[r] != hashes[0]) {
      throw ConfigError(str_cat("the resolved config differs between rank 0 and rank ", r,
                                " (hash ", hashes[0], " vs ", hashes[r],
                                "); every rank must read the same file, --set options and "
                                "sync.cost_model file"));
    }
  }
}

// A rerun (a resume, a restart by launch/braid-restart) keeps the flight records of the run
// before it in flight-previous/, so `braid doctor` never mixes two runs' records.
void rotate_flight_records(const fs::path& run_dir) {
  const fs::path records = run_dir / "flight";
  if (!fs::exists(records)) return;
  fs::remove_all(run_dir / "flight-previous");
  fs::rename(records, run_dir / "flight-previous");
}

// The ranks agreed on the config (train()): the communicator's own options come from it.
std::shared_ptr<Communicator> communicator_for(const World& world, const Config& config,
                                               Device device,
                                               std::shared_ptr<FlightRecorder> recorder) {
  DataParallelOptions options = data_parallel_options(config);
  options.device = device;
  options.flight_recorder = std::move(recorder);
  return make_communicator(world, options);
}

// Collective (one small allgather): every rank's host name, for flight records (a rank that
// died writes none, and `braid doctor` must still name its host).
std::vector<std::string> host_names(Communicator& comm) {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  const std::string mine(name);
  BytesResult all = comm.allgather_bytes({mine.begin(), mine.end()});
  all.work.wait();
  std::vector<std::string> hosts;
  for (const auto& bytes : *all.data) hosts.emplace_back(bytes.begin(), bytes.end());
  return hosts;
}

// Whether this rank's host runs more compute threads (ranks x runtime.threads) than this rank
// may use cores (its affinity mask: a container's cpuset too), so that the ranks take the cores
// from each other in turns.
bool host_crowded(const std::vector<std::string>& hosts, int rank, std::int64_t threads) {
  const auto here = std::count(hosts.begin(), hosts.end(), hosts[static_cast<std::size_t>(rank)]);
  cpu_set_t usable;
  const int cores = sched_getaffinity(0, sizeof usable, &usable) == 0
                        ? CPU_COUNT(&usable)
                        : static_cast<int>(std::thread::hardware_concurrency());
  return cores > 0 && here * threads > cores;
}

// Collective (one small allreduce): whether any host is crowded, where a link probe's pairs
// must take turns (LinkProbe).
bool any_host_crowded(Communicator& comm, bool crowded_here) {
  std::int64_t any = crowded_here ? 1 : 0;
  comm.allreduce(Buffer{&any, 1, DType::kInt64}, ReduceOp::kMax, "rhd").wait();
  return any != 0;
}

// The loop and its periodic activities; one object per run so each phase is a small method.
class Trainer {
 public:
  Trainer(const World& world, const Config& config, PreparedRun prepared);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  TrainSummary run();

 private:
  TrainSummary run_loop();
  std::string straggler_field() const;
  std::string slow_link_field() const;
  void restore();
  void continue_at_this_rank_count(int written_by);
  std::int64_t steps_left_in_run() const;
  void step();
  at::Tensor batch_indices(const BatchAssignment& assignment, std::size_t k, int j);
  void micro_step(const at::Tensor& indices, double weight, bool last, double& loss_value);
  int agree_after_step();
  void watch_stalls(bool on);
  void note_straggler(const std::optional<StragglerReport>& now);
  void note_slow_link(const std::optional<SlowLinkReport>& now);
  void log_training();
  Evaluation log_evaluation();
  void save_checkpoint();
  TrainSummary finish(double train_seconds);
  TrainSummary finish_interrupted(int signal);
  double time_s() const { return time_offset_s_ + seconds_since(start_); }
  SyncStats totals() const;

  const Config& config_;
  const int rank_, P_, accumulate_;
  const Device device_;  // runtime.device, agreed by all ranks; the model and data live there
  const fs::path run_dir_;
  DataSplits data_;
  std::shared_ptr<Model> model_;
  // The interrupt flags of past steps, combined over ranks while later steps compute (one step,
  // or as many as the strategy lets a rank run ahead of a straggler), oldest first. Declared
  // before the communicator so that they outlive it: its destructor ends (and joins) the
  // allreduces that write into them, also when one is still waiting on a stuck peer.
  // Each holds the signal (slot 0) and every rank's compute seconds (slot 1 + r), maxed over
  // ranks: the straggler detector's input costs no message of its own.
  std::deque<std::pair<std::vector<double>, Work>> stops_;
  std::shared_ptr<FlightRecorder> recorder_;  // runtime.flight_recorder (capacity 0: stalls only)
  std::shared_ptr<Communicator> comm_;
  std::unique_ptr<FlightWatch> watch_;
  std::unique_ptr<LinkProbe> links_;  // runtime.link_probe_every > 0 with 3 or more ranks
  std::unique_ptr<DataParallel> dp_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  DataPlan plan_;  // P * accumulate_steps partitions per step: micro-step j of rank r is j*P + r
  Checkpointer checkpointer_;
  std::unique_ptr<MetricsLog> metrics_;
  Progress progress_;
  TrainPosition position_;
  // The positions of the last steps, newest last: a strategy may compute pieces of earlier
  // steps' batches (BatchAssignment::steps_back).
  std::deque<TrainPosition> recent_;
  static constexpr std::size_t kPositionsKept = 256;
  std::int64_t total_steps_ = 0, first_step_ = 0, last_checkpoint_ = -1;
  SteadyClock::time_point start_ = SteadyClock::now();
  double time_offset_s_ = 0;  // training time of the runs this one resumes
  double first_exposed_comm_s_ = 0;
  StragglerInjection inject_;
  CrashInjection crash_;
  StragglerDetector stragglers_;
  std::optional<StragglerReport> straggler_;  // flagged now (on every rank alike)
  std::optional<SlowLinkReport> slow_link_;   // named now
  double compute_s_ = 0;                      // this step's forward and backward passes
  bool crowded_ = false;                      // this rank's host: more threads than cores
  std::deque<double> step_seconds_;           // recent steps, for the stall threshold
  SteadyClock::time_point step_start_ = start_;
  void wait_stops();
  // The window since the last training line.
  SteadyClock::time_point window_start_ = start_;
  std::int64_t window_steps_ = 0;
  double window_loss_ = 0, window_comm_start_ = 0, last_lr_ = 0;
};

Trainer::Trainer(const World& world, const Config& config, PreparedRun prepared)
    : config_(config),
      rank_(world.rank()),
      P_(world.size()),
      accumulate_(static_cast<int>(config.train.accumulate_steps)),
      device_(select_device(world, config.runtime.device)),
      run_dir_(config.run.dir),
      data_(std::move(prepared.data)),
      model_(std::move(prepared.model)),
      recorder_(std::make_shared<FlightRecorder>(
          static_cast<std::size_t>(config.runtime.flight_recorder), world.rank())),
      comm_(communicator_for(world, config, device_, recorder_)),
      plan_(data_.train.size(), rank_, P_ * accumulate_, config.data.batch_size, config.run.seed),
      checkpointer_(config.run.dir, rank_, P_, resume_fingerprint(config)),
      progress_(rank_ == 0, config.runtime.progress),
      inject_(config.inject, rank_, P_),
      crash_(config.inject, rank_, P_),
      stragglers_(P_, config.runtime.straggler_factor, kStragglerSteps) {
  // Rank per GPU: the model and both data sets move once; batches are then picked on the device.
  if (device_.is_cuda()) {
    const c10::Device where = torch_device(device_);
    model_->to(where);
    for (Dataset* set : {&data_.train, &data_.test}) {
      set->inputs = set->inputs.to(where);
      set->targets = set->targets.to(where);
    }
  }
  warn_about_settings(world, *comm_, config_);
  FlightFile identity;
  identity.rank = rank_;
  identity.world = P_;
  const std::vector<std::string> hosts = host_names(*comm_);
  identity.hosts = hosts;
  identity.host = hosts[static_cast<std::size_t>(rank_)];
  identity.pid = getpid();
  identity.ranks_per_node = static_cast<int>(config_.runtime.ranks_per_node);
  watch_ = std::make_unique<FlightWatch>(recorder_, std::move(identity),
                                         flight_file_path(run_dir_, rank_));
  crowded_ = host_crowded(hosts, rank_, config_.runtime.threads);
  if (config_.runtime.link_probe_every > 0 && P_ >= 3) {
    links_ = std::make_unique<LinkProbe>(*comm_, any_host_crowded(*comm_, crowded_));
  }
  DataParallelOptions options = data_parallel_options(config_);
  options.device = device_;
  // The strategy counts steps; schedules by epoch (DGC's warm-up) need this run's epoch length.
  options.compression.compression.dgc.steps_per_epoch = plan_.steps_per_epoch();
  dp_ = std::make_unique<DataParallel>(comm_, named_parameters(*model_), options,
                                       named_buffers(*model_));
  optimizer_ = make_optimizer(config_, model_->parameters());
  if (auto* exchanging = dynamic_cast<ExchangingOptimizer*>(optimizer_.get())) {
    dp_->strategy().host_optimizer(*exchanging);  // before restore(): load() may check sizes
  }
  // Before anything is written: a resume that refuses the config leaves the run untouched.
  if (config_.train.resume == "auto") restore();
  if (prepared.initial_weights > 0 && rank_ == 0) {
    if (position_.step > 0) {
      spdlog::info("train.init_from is not used: the run resumed from its own checkpoint");
    } else {
      spdlog::info("started from the weights in {} ({} tensors)", config_.train.init_from,
                   prepared.initial_weights);
    }
  }
  total_steps_ = position_.step + steps_left_in_run();
  if (rank_ == 0) warn_about_dgc_warmup(config_, plan_.steps_per_epoch(), total_steps_);
  first_step_ = position_.step;
  last_lr_ = config_.optimizer.lr;
  window_comm_start_ = first_exposed_comm_s_ = dp_->stats().exposed_comm_s;
}

// On an error path an interrupt allreduce may still wait on a stuck peer while the strategy and
// the communicator go away: abort first, so it ends now, and wait for each (it completes with the
// abort's error, which the error already being reported makes moot) before its flag is freed.
Trainer::~Trainer() {
  if (!comm_) return;
  const bool in_flight = std::any_of(stops_.begin(), stops_.end(),
                                     [](const auto& stop) { return !stop.second.is_completed(); });
  if (in_flight) comm_->abort("training ended with an interrupt allreduce in flight");
  for (auto& stop : stops_) {
    try {
      stop.second.wait();
    } catch (const std::exception&) {
    }
  }
}

// Steps from the restored position to the end: train.max_steps, or the rest of this epoch
// (which may have begun at another rank count) and the remaining epochs.
std::int64_t Trainer::steps_left_in_run() const {
  if (config_.train.max_steps > 0)
    return std::max<std::int64_t>(0, config_.train.max_steps - position_.step);
  const std::int64_t this_epoch =
      plan_.steps_in_epoch(position_.epoch_offset) - position_.step_in_epoch;
  const std::int64_t later = config_.train.epochs - position_.epoch - 1;
  return later < 0 ? 0 : this_epoch + later * plan_.steps_per_epoch();
}

void Trainer::restore() {
  trace::Scope scope("restore checkpoint", "io");
  if (auto restored = checkpointer_.load_latest(*comm_, *model_, *optimizer_, dp_->strategy())) {
    position_ = *restored;
    time_offset_s_ = position_.time_s;
    if (rank_ == 0) {
      spdlog::info("resumed from {} at step {}", checkpointer_.latest_path(), position_.step);
    }
    if (position_.world != P_) continue_at_this_rank_count(position_.world);
  }
}

// The checkpoint's run had another rank count, so another global batch: continue at the same
// sample of the same epoch, counting this rank count's steps from there.
void Trainer::continue_at_this_rank_count(int written_by) {
  const std::int64_t per_rank = config_.data.batch_size * accumulate_;
  position_.epoch_offset += position_.step_in_epoch * written_by * per_rank;
  position_.step_in_epoch = 0;
  if (rank_ == 0) {
    spdlog::warn(
        "the checkpoint was written by {} ranks, this run has {}: the global batch changes from "
        "{} to {} samples; continuing at sample {} of epoch {}",
        written_by, P_, written_by * per_rank, P_ * per_rank, position_.epoch_offset,
        position_.epoch);
  }
}

// One step: the strategy says which partitions of the global batch this rank computes and
// with which weights (one partition, weight 1, for synchronous allreduce); with gradient
// accumulation each is computed as accumulate_steps micro-batches, and only the last backward
// pass of the step exchanges.
void Trainer::step() {
  if (position_.step_in_epoch == plan_.steps_in_epoch(position_.epoch_offset)) {
    ++position_.epoch;
    position_.step_in_epoch = 0;
    position_.epoch_offset = 0;
  }
  SyncStrategy& strategy = dp_->strategy();
  recent_.push_back(position_);
  if (recent_.size() > kPositionsKept) recent_.pop_front();
  const BatchAssignment assignment = strategy.assign_batch(position_.step, rank_, P_);
  last_lr_ = learning_rate(config_.optimizer, position_.step, total_steps_);
  set_learning_rate(*optimizer_, last_lr_);
  optimizer_->zero_grad();
  double loss_value = 0;
  // A straggler that already holds this step's result (gradient coding) skips computing it.
  const std::size_t parts = strategy.wants_gradients() ? assignment.partitions.size() : 0;
  const SteadyClock::time_point compute_start = SteadyClock::now();
  const std::optional<std::int64_t> queued_before =
      crowded_ ? run_queue_wait_ns() : std::optional<std::int64_t>{};
  // A strategy that cuts the global batch into pieces of its own computes each in one pass.
  const int micro = assignment.pieces > 0 ? 1 : accumulate_;
  for (std::size_t k = 0; k < parts; ++k) {
    strategy.begin_partition(k, loss_value);
    for (int j = 0; j < micro; ++j) {
      micro_step(batch_indices(assignment, k, j), assignment.weights[k] / micro,
                 k + 1 == parts && j + 1 == micro, loss_value);
    }
  }
  if (parts > 0) inject_.after_compute(position_.step, seconds_since(compute_start));
  // On a crowded host the time this rank waited for a core the other ranks held is the
  // scheduler's, not this rank's (runtime/cpu_wait.h). The wait is read before the clock, so
  // that a wait after the clock's reading cannot be taken off.
  const double queued = run_queue_seconds_since(queued_before);
  compute_s_ = std::max(0.0, seconds_since(compute_start) - queued);
  strategy.set_step_loss(loss_value);
  {
    trace::Scope scope("strategy step", "compute");
    dp_->step(*optimizer_);
  }
  if (const std::optional<double> global = strategy.global_loss()) loss_value = *global;
  ++position_.step;
  ++position_.step_in_epoch;
  ++window_steps_;
  window_loss_ += loss_value;
}

// Micro-step j of partition k: by default partition j * P + partitions[k] of this step's
// P * accumulate partitions; a piece of the global batch of the step steps_back[k] steps ago
// when the strategy cuts batches into pieces (sequential gradient coding).
at::Tensor Trainer::batch_indices(const BatchAssignment& assignment, std::size_t k, int j) {
  if (assignment.pieces == 0) {
    return plan_.partition_indices(position_.epoch, position_.step_in_epoch,
                                   j * P_ + assignment.partitions[k], position_.epoch_offset);
  }
  const std::size_t back = assignment.steps_back.empty() ? 0 : assignment.steps_back[k];
  BRAID_CHECK(back < recent_.size(), "the strategy asks for the batch of ", back,
              " steps ago; the trainer keeps ", recent_.size());
  const TrainPosition& then = recent_[recent_.size() - 1 - back];
  return plan_.piece_indices(then.epoch, then.step_in_epoch, assignment.partitions[k],
                             assignment.pieces, then.epoch_offset);
}

void Trainer::micro_step(const at::Tensor& indices, double weight, bool last, double& loss_value) {
  at::Tensor idx = indices.to(data_.train.inputs.device());
  at::Tensor loss;
  {
    trace::Scope scope("forward", "compute");
    const auto [x, y] = data_.train.rows(idx);
    loss = model_->loss(model_->forward(x), y);
  }
  std::optional<DataParallel::NoSync> accumulate_only;
  if (!last) accumulate_only.emplace(dp_->no_sync());
  trace::Scope scope("backward", "compute");
  (weight == 1.0 ? loss : loss * weight).backward();
  loss_value += loss.item<double>() * weight;
}

// All ranks must stop at the same step. Each step sends the signal this rank received (0 for
// none) in a small allreduce (max) that runs behind the step's buckets; the result is read one
// step later, so the decision is the same everywhere and the wait is hidden. The same
// allreduce carries every rank's compute time to the straggler detector. Returns the agreed
// signal, or 0.
int Trainer::agree_after_step() {
  if (P_ == 1) return InterruptWatch::received();
  int agreed = 0;
  if (static_cast<int>(stops_.size()) > dp_->strategy().steps_ahead()) {
    stops_.front().second.wait();
    const std::vector<double>& all = stops_.front().first;
    agreed = static_cast<int>(all[0]);
    note_straggler(stragglers_.add({all.begin() + 1, all.end()}));
    stops_.pop_front();
  }
  std::vector<double> mine(static_cast<std::size_t>(P_) + 1, 0.0);
  mine[0] = InterruptWatch::received();
  mine[static_cast<std::size_t>(rank_) + 1] = compute_s_;
  Buffer buffer{mine.data(), P_ + 1, DType::kFloat64};  // the vector's memory moves with it
  Work work = comm_->allreduce(buffer, ReduceOp::kMax, "rhd");
  stops_.emplace_back(std::move(mine), std::move(work));
  return agreed;
}

// Every rank reaches the same verdict; rank 0 says when it changes.
void Trainer::note_straggler(const std::optional<StragglerReport>& now) {
  if (rank_ == 0 && now && (!straggler_ || straggler_->rank != now->rank)) {
    progress_.interrupt();
    spdlog::warn(
        "straggler: rank {} computes {:.2f}x as long as the median of the others (in 80% of "
        "its last {} steps; runtime.straggler_factor {})",
        now->rank, now->ratio, kStragglerSteps, config_.runtime.straggler_factor);
  } else if (rank_ == 0 && straggler_ && !now) {
    spdlog::info("straggler: rank {} is no longer slower than the others", straggler_->rank);
  }
  straggler_ = now;
}

void Trainer::note_slow_link(const std::optional<SlowLinkReport>& now) {
  const auto same = [](const SlowLinkReport& x, const SlowLinkReport& y) {
    return x.a == y.a && x.b == y.b;
  };
  if (rank_ == 0 && now && (!slow_link_ || !same(*slow_link_, *now))) {
    progress_.interrupt();
    spdlog::warn(
        "slow link: rank {} <-> rank {}: exchanges take {:.1f}x as long as on any other "
        "links (the fastest of the last 3 link probes)",
        now->a, now->b, now->ratio);
  } else if (rank_ == 0 && slow_link_ && !now) {
    spdlog::info("slow link: rank {} <-> rank {} is no longer slower than the others",
                 slow_link_->a, slow_link_->b);
  }
  slow_link_ = now;
}

// A collective that waits longer than max(2 s, 5 x the median step) for some rank is reported
// (FlightWatch). Off while ranks legitimately wait for the slowest (evaluation, checkpoints),
// and for the first steps, which include one-time set-up.
void Trainer::watch_stalls(bool on) {
  if (!on || step_seconds_.size() < kStallWarmupSteps) {
    watch_->set_stall_threshold(std::chrono::milliseconds(0));
    return;
  }
  std::vector<double> recent(step_seconds_.begin(), step_seconds_.end());
  std::nth_element(recent.begin(), recent.begin() + recent.size() / 2, recent.end());
  const double seconds = std::max(kStallMinSeconds, kStallMedians * recent[recent.size() / 2]);
  watch_->set_stall_threshold(std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1e3)));
}

void Trainer::wait_stops() {
  for (auto& stop : stops_) stop.second.wait();
}

// "straggler":{"rank":R,"ratio":X} while a rank is flagged; nothing otherwise.
std::string Trainer::straggler_field() const {
  if (!straggler_) return {};
  return str_cat("\"straggler\":{", field("rank", static_cast<std::int64_t>(straggler_->rank)), ",",
                 field("ratio", straggler_->ratio), "}");
}

// "slow_link":{"ranks":[A,B],"ratio":X} while a link is named; nothing otherwise.
std::string Trainer::slow_link_field() const {
  if (!slow_link_) return {};
  return str_cat("\"slow_link\":{\"ranks\":[", slow_link_->a, ",", slow_link_->b, "],",
                 field("ratio", slow_link_->ratio), "}");
}

SyncStats Trainer::totals() const {
  SyncStats stats = dp_->stats();
  stats.bytes_sent += position_.bytes_sent;
  stats.bytes_recv += position_.bytes_recv;
  stats.bytes_dense += position_.bytes_dense;
  stats.skipped_steps += position_.skipped_steps;
  return stats;
}

void Trainer::log_training() {
  const double seconds = seconds_since(window_start_);
  const double loss = sum_over_ranks(*comm_, {window_loss_ / window_steps_})[0] / P_;
  const SyncStats stats = totals();
  // Synchronous strategies skip the same steps on every rank; a local-update rank skips its own
  // inner steps: the line reports the most any rank skipped (one small allreduce per line).
  std::int64_t skipped = stats.skipped_steps;
  comm_->allreduce(Buffer{&skipped, 1, DType::kInt64}, ReduceOp::kMax, "rhd").wait();
  ProgressLine line;
  line.step = position_.step;
  line.total_steps = total_steps_;
  line.epoch = position_.epoch;
  line.loss = loss;
  line.lr = last_lr_;
  line.samples_per_s = window_steps_ * config_.data.batch_size * accumulate_ * P_ / seconds;
  line.step_ms = 1e3 * seconds / window_steps_;
  line.comm_ms = 1e3 * (stats.exposed_comm_s - window_comm_start_) / window_steps_;
  line.eta_s = (total_steps_ - position_.step) * seconds / window_steps_;
  if (metrics_) {
    metrics_->write(
        {field("step", position_.step), field("epoch", position_.epoch), field("loss", loss),
         field("lr", last_lr_), field("samples_per_s", line.samples_per_s),
         field("step_ms", line.step_ms), field("comm_ms", line.comm_ms),
         field("bytes_sent", stats.bytes_sent), field("bytes_recv", stats.bytes_recv),
         field("compression_ratio", stats.bytes_sent ? static_cast<double>(stats.bytes_dense) /
                                                           static_cast<double>(stats.bytes_sent)
                                                     : 1.0),
         field("skipped_steps", skipped), field("time_s", time_s()), straggler_field(),
         slow_link_field()});
  }
  progress_.show(line);
  window_start_ = SteadyClock::now();
  window_steps_ = 0;
  window_loss_ = 0;
  window_comm_start_ = stats.exposed_comm_s;
}

Evaluation Trainer::log_evaluation() {
  trace::Scope scope("evaluation", "compute");
  watch_stalls(false);
  Evaluation e;
  {
    // Local-update methods: the global parameters, as their papers evaluate.
    GlobalParametersScope global(dp_->strategy(), model_->parameters());
    e = evaluate(*model_, data_.test, *comm_, config_.train.eval_batch_size);
  }
  if (metrics_) {
    metrics_->write({field("step", position_.step), field("epoch", position_.epoch),
                     field("test_loss", e.loss), field("test_accuracy", e.accuracy),
                     field("time_s", time_s())});
  }
  watch_stalls(true);
  if (rank_ == 0) {
    progress_.interrupt();
    spdlog::info("step {} evaluation: test loss {:.4f}, test accuracy {:.4f}", position_.step,
                 e.loss, e.accuracy);
  }
  return e;
}

void Trainer::save_checkpoint() {
  trace::Scope scope("checkpoint", "io");
  watch_stalls(false);
  dp_->strategy().quiesce();
  TrainPosition saved = position_;
  saved.time_s = time_s();
  const SyncStats stats = totals();
  saved.bytes_sent = stats.bytes_sent;
  saved.bytes_recv = stats.bytes_recv;
  saved.bytes_dense = stats.bytes_dense;
  saved.skipped_steps = stats.skipped_steps;
  checkpointer_.save(*comm_, saved, *model_, *optimizer_, dp_->strategy());
  last_checkpoint_ = position_.step;
  watch_stalls(true);
}

// A failed run leaves each rank's flight record for `braid doctor` (runtime.flight_recorder).
TrainSummary Trainer::run() {
  try {
    return run_loop();
  } catch (const std::exception& e) {
    watch_->dump(str_cat("failed: ", e.what()));
    throw;
  }
}

TrainSummary Trainer::run_loop() {
  if (first_step_ >= total_steps_ && first_step_ > 0) {
    // A finished run asked to resume: report, touch nothing (metrics, summary, checkpoints).
    if (rank_ == 0) {
      const std::string asked =
          config_.train.max_steps > 0
              ? fmt::format("train.max_steps is {}", config_.train.max_steps)
              : fmt::format("train.epochs {} make {} steps", config_.train.epochs, total_steps_);
      spdlog::info(
          "the run in {} is finished: it reached step {} and {}; nothing to do (raise "
          "train.max_steps or train.epochs to train further)",
          config_.run.dir, first_step_, asked);
    }
    TrainSummary summary;
    summary.steps = first_step_;
    summary.already_finished = true;
    return summary;
  }
  if (rank_ == 0) {
    fs::create_directories(run_dir_);
    rotate_flight_records(run_dir_);
    if (position_.step > 0) warn_about_changed_keys(run_dir_ / "config.yaml", config_);
    std::ofstream(run_dir_ / "config.yaml") << config_.to_yaml();
    metrics_ = std::make_unique<MetricsLog>((run_dir_ / "metrics.jsonl").string(),
                                            config_.train.resume == "auto" ? position_.step : -1);
    spdlog::info(
        "training {} on {} ({} train / {} test samples), {} ranks x batch {}{}, {} steps "
        "({} per epoch), sync {} with {}",
        config_.model.name, config_.data.name, data_.train.size(), data_.test.size(), P_,
        config_.data.batch_size,
        accumulate_ > 1 ? fmt::format(" x {} micro-steps", accumulate_) : std::string(),
        total_steps_, plan_.steps_per_epoch(), config_.sync.strategy, config_.sync.algorithm);
  }
  if (rank_ == 0 && inject_.enabled()) {
    spdlog::warn("straggler injection (inject:) is on: {}; step times include the injected waits",
                 inject_.describe());
  }
  if (rank_ == 0 && config_.sync.aggregator != "mean") {
    spdlog::info("robust aggregation: sync.aggregator {} tolerating {} bad rank(s)",
                 config_.sync.aggregator, config_.sync.byzantine);
  }
  if (rank_ == 0 && config_.inject.attack != "none") {
    spdlog::warn("inject.attack {} is on: ranks [{}] send attacked gradients",
                 config_.inject.attack, fmt::join(config_.inject.byzantine_ranks, ", "));
  }
  if (rank_ == 0 && config_.inject.crash_rank >= 0) {
    if (crash_.applies()) {
      spdlog::warn("inject.crash_rank: rank {} will kill itself after {} s of training",
                   config_.inject.crash_rank, config_.inject.crash_after_s);
    } else {
      spdlog::warn(
          "inject.crash_rank {} is ignored: this job has ranks 0..{} (the node that "
          "failed is no longer in it)",
          config_.inject.crash_rank, P_ - 1);
    }
  }
  comm_->barrier().wait();
  if (config_.runtime.trace) {
    fs::create_directories(run_dir_ / "trace");
    trace::start((run_dir_ / "trace" / fmt::format("rank-{:05d}.json", rank_)).string(), rank_);
  }
  InterruptWatch watch;
  const bool periodic_log = config_.train.log_every > 0 || progress_.bar();
  const std::int64_t log_every = config_.train.log_every > 0 ? config_.train.log_every : 10;
  const auto every = [&](std::int64_t period) {
    return period > 0 && position_.step % period == 0;
  };
  while (position_.step < total_steps_) {
    step_start_ = SteadyClock::now();
    try {
      step();
    } catch (const NonFiniteError&) {
      // Every rank stops at this step: the interrupt flags in flight complete on all of them, and
      // must before their memory goes.
      wait_stops();
      throw;
    }
    if (periodic_log && (position_.step % log_every == 0 || position_.step == total_steps_)) {
      log_training();
    }
    if (const int signal = agree_after_step()) return finish_interrupted(signal);
    crash_.check(start_);
    step_seconds_.push_back(seconds_since(step_start_));
    if (step_seconds_.size() > kStallWindowSteps) step_seconds_.pop_front();
    if (links_ && position_.step % config_.runtime.link_probe_every == 0) {
      note_slow_link(links_->probe());
    }
    watch_stalls(true);
    if (every(config_.train.eval_every) && position_.step < total_steps_) log_evaluation();
    // The last step's checkpoint is written by finish(), after the final evaluation, so the
    // time_s it carries covers everything this run logged.
    if (every(config_.train.checkpoint_every) && position_.step < total_steps_) save_checkpoint();
  }
  wait_stops();
  watch_stalls(false);
  return finish(seconds_since(start_));
}

// Interrupted: every rank writes a checkpoint of the step all agreed on, and the run can be
// continued by running the same command again.
TrainSummary Trainer::finish_interrupted(int signal) {
  wait_stops();
  watch_stalls(false);
  watch_->dump(str_cat("interrupted by signal ", signal));
  if (window_steps_ > 0) log_training();
  if (last_checkpoint_ != position_.step) save_checkpoint();
  trace::stop();
  if (rank_ == 0) {
    progress_.interrupt();
    spdlog::warn(
        "interrupted at step {} ({}); checkpoint written; rerun the same command to continue",
        position_.step,
        signal == SIGINT    ? "SIGINT"
        : signal == SIGTERM ? "SIGTERM"
                            : "signal");
  }
  TrainSummary summary;
  summary.steps = position_.step;
  summary.interrupted_by = signal;
  return summary;
}

TrainSummary Trainer::finish(double train_seconds) {
  if (window_steps_ > 0) log_training();
  Evaluation final_eval = log_evaluation();
  if (last_checkpoint_ != position_.step) save_checkpoint();
  trace::stop();

  TrainSummary summary;
  summary.steps = position_.step;
  summary.test_loss = final_eval.loss;
  summary.test_accuracy = final_eval.accuracy;
  const double samples = static_cast<double>(position_.step - first_step_) *
                         static_cast<double>(config_.data.batch_size * accumulate_ * P_);
  summary.samples_per_s = train_seconds > 0 ? samples / train_seconds : 0;
  summary.train_seconds = train_seconds;
  summary.exposed_comm_s = dp_->stats().exposed_comm_s - first_exposed_comm_s_;
  const SyncStats stats = totals();
  summary.bytes_sent = stats.bytes_sent;
  summary.bytes_recv = stats.bytes_recv;
  if (rank_ == 0) {
    // Replicas are identical (local-update methods: their global parameters, the ones
    // evaluated), so rank 0's weights are the model; torch.load reads the file.
    {
      GlobalParametersScope global(dp_->strategy(), model_->parameters());
      export_model(*model_, (run_dir_ / "model.pt").string());
    }
    std::ofstream(run_dir_ / "summary.json")
        << "{" << field("steps", summary.steps) << "," << field("test_loss", summary.test_loss)
        << "," << field("test_accuracy", summary.test_accuracy) << ","
        << field("samples_per_s", summary.samples_per_s) << ","
        << field("ranks", static_cast<std::int64_t>(P_)) << ","
        << field("bytes_sent", summary.bytes_sent) << "," << field("bytes_recv", summary.bytes_recv)
        << "," << field("bytes_shared", stats.bytes_shared) << "}\n";
    // On one node gradients move through shared memory: say so, or "0.0 MB sent" looks broken.
    const std::string shared = stats.bytes_shared
                                   ? fmt::format(", {:.1f} MB read from node peers' shared memory",
                                                 stats.bytes_shared / 1e6)
                                   : "";
    spdlog::info(
        "done: {} steps, test accuracy {:.4f}, test loss {:.4f}, {:.0f} samples/s on {} "
        "ranks, {:.1f} MB sent and {:.1f} MB received per rank{}; run directory {}",
        summary.steps, summary.test_accuracy, summary.test_loss, summary.samples_per_s, P_,
        summary.bytes_sent / 1e6, summary.bytes_recv / 1e6, shared, config_.run.dir);
  }
  return summary;
}

}  // namespace

PreparedRun prepare_training(const Config& config, int rank, int world_size) {
  check_run_dir_free(config);
  if (!config.sync.cost_model.empty()) load_cost_model(config.sync.cost_model);  // readable?
  PreparedRun prepared;
  prepared.data = load_data(config.data, config.model);
  torch::manual_seed(config.run.seed);
  prepared.model = make_model(config.model);
  if (!config.train.init_from.empty()) {
    prepared.initial_weights = load_initial_weights(*prepared.model, config.train.init_from);
  }
  // Ids the model cannot embed would fail its first forward pass with a less useful message.
  if (config.data.name == "tokens")
    check_token_range(config.data, prepared.data.train, *prepared.model);
  if (config.model.name == "torchscript" && prepared.data.train.size() > 0) {
    // A module written elsewhere: one forward pass on two samples finds a wrong output type,
    // shape or dtype now, on every rank, rather than in the first step.
    const std::int64_t n = std::min<std::int64_t>(2, prepared.data.train.size());
    const auto [x, y] = prepared.data.train.rows(torch::arange(n, torch::kLong));
    check_model_on_batch(*prepared.model, config.model, x, y);
  }
  DataPlan(prepared.data.train.size(), rank, world_size * config.train.accumulate_steps,
           config.data.batch_size, config.run.seed);  // ConfigError when a step does not fit
  // Limits that depend on the rank count, refused before the run directory exists.
  const DataParallelOptions options = data_parallel_options(config);
  check_aggregator(options.aggregator, world_size);
  check_attack(options.attack, world_size);
  if (!config.inject.trace.empty()) StragglerTrace::load(config.inject.trace, rank, world_size);
  check_strategy_for_job(options, world_size, config.data.batch_size,
                         config.train.accumulate_steps);
  return prepared;
}

TrainSummary train(const World& world, const Config& config, PreparedRun prepared) {
  init_logging(world.rank(), world.size(), spdlog::level::from_str(config.runtime.log_level));
  set_compute_threads(static_cast<int>(config.runtime.threads));
  // runtime.device is resolved (and agreed across ranks) when the Trainer is built.
  spdlog::debug("local rank {}, runtime.device {}, {} torch threads", world.local_rank(),
                config.runtime.device, config.runtime.threads);
  check_same_config(world, config);
  // Before anything is written to run.dir: one job owns it. Rank 0 locks it and the outcome
  // is agreed, so a refusal ends every rank with exit 2 (rank 0 prints the message).
  std::unique_ptr<RunDirLock> lock;
  std::string refused;
  if (world.rank() == 0) {
    try {
      lock = RunDirLock::acquire(config.run.dir);
    } catch (const ConfigError& e) {
      refused = e.what();
    }
  }
  if (world.lowest_failing_rank(!refused.empty()) >= 0) throw ConfigError(refused);
  try {
    return Trainer(world, config, std::move(prepared)).run();
  } catch (...) {
    trace::stop();  // a failed run's trace is still a valid file
    throw;
  }
}

}  // namespace braid
