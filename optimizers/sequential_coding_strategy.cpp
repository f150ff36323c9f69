#include "optimizers/sequential_coding_strategy.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <torch/optim/optimizer.h>

#include <algorithm>
#include <thread>

#include "collectives/tensor.h"
#include "common/error.h"
#include "common/trace.h"
#include "optimizers/replicas.h"

namespace braid {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string ranks_list(const std::vector<char>& arrived) {
  std::string out;
  for (std::size_t w = 0; w < arrived.size(); ++w) {
    if (!arrived[w]) out += (out.empty() ? "" : ", ") + std::to_string(w);
  }
  return "[" + out + "]";
}

}  // namespace

SequentialCodingStrategy::SequentialCodingStrategy(std::shared_ptr<Communicator> comm,
                                                   SequentialCodingOptions options)
    : comm_(std::move(comm)),
      options_(std::move(options)),
      code_(options_.scheme, comm_->size(), options_.burst, options_.window, options_.lambda) {
  if (!(options_.mu >= 0)) {
    throw ConfigError(str_cat("coding.mu must be >= 0, got ", options_.mu));
  }
  channel_ = comm_->channel(comm_->options());
}

SequentialCodingStrategy::~SequentialCodingStrategy() {
  if (!params_.empty()) results_.close(*channel_, "sequential_coding drain", code_.scheme());
}

void SequentialCodingStrategy::attach(const NamedTensors& parameters) {
  BRAID_CHECK(params_.empty(), "attach() called twice");
  check_same_model(*comm_, parameters);
  FlatParameters flat = flat_parameters(parameters, "sequential coding");
  guard_.emplace(options_.nonfinite, std::move(flat.names));
  params_ = std::move(flat.tensors);
  dtype_ = flat.dtype;
  count_ = flat.count;
  for (int k = 0; k <= code_.delay(); ++k) {
    std::vector<at::Tensor> copy;
    for (const at::Tensor& p : params_) copy.push_back(at::empty_like(p));
    snapshots_.push_back(std::move(copy));
  }
  message_.assign(message_length() * c10::elementSize(dtype_), 0);
  result_.assign(result_length() * c10::elementSize(dtype_), 0);
  make_replicas_identical(*comm_, params_, 0);
}

BatchAssignment SequentialCodingStrategy::assign_batch(std::int64_t step, int rank,
                                                       int world) const {
  BRAID_CHECK(world == code_.workers(), "sequential code for ", code_.workers(),
              " ranks, asked for ", world);
  BRAID_CHECK(step == steps_, "sequential coding: assign_batch for step ", step, " at step ",
              steps_);
  assigned_ = true;
  round_start_ = Clock::now();
  BatchAssignment out;
  out.pieces = code_.units();
  slot_of_partition_.clear();
  back_of_partition_.clear();
  const std::vector<MiniTask>& tasks = code_.tasks(rank);
  for (int slot = 0; slot < static_cast<int>(tasks.size()); ++slot) {
    const MiniTask& task = tasks[static_cast<std::size_t>(slot)];
    if (task.job < 0) continue;
    for (std::size_t u = 0; u < task.units.size(); ++u) {
      out.partitions.push_back(task.units[u]);
      out.weights.push_back(task.weights[u]);
      out.steps_back.push_back(static_cast<int>(round() - task.job));
      slot_of_partition_.push_back(slot);
      back_of_partition_.push_back(out.steps_back.back());
    }
  }
  return out;
}

bool SequentialCodingStrategy::wants_gradients() {
  computed_ = channel_->rank() == 0 || results_.results_through() < round();
  if (!computed_) ++skipped_;
  return computed_;
}

void SequentialCodingStrategy::take_snapshot() {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor>& into = snapshots_[round() % (code_.delay() + 1)];
  for (std::size_t i = 0; i < params_.size(); ++i) into[i].copy_(params_[i]);
  snapshot_round_ = loaded_round_ = round();
}

void SequentialCodingStrategy::load_parameters(std::int64_t job) {
  if (loaded_round_ == job) return;
  BRAID_CHECK(job <= round() && job > round() - code_.delay() - 1 && job >= 0,
              "sequential coding: no parameters of round ", job, " at round ", round());
  at::NoGradGuard no_grad;
  const std::vector<at::Tensor>& from = snapshots_[job % (code_.delay() + 1)];
  for (std::size_t i = 0; i < params_.size(); ++i) params_[i].copy_(from[i]);
  loaded_round_ = job;
}

// Partitions come grouped by slot: a new slot keeps the last one's gradients in the message,
// starts from zero gradients and puts its job's parameters in the model.
void SequentialCodingStrategy::begin_partition(std::size_t k, double loss_so_far) {
  BRAID_CHECK(k < slot_of_partition_.size(), "partition ", k, " of ", slot_of_partition_.size());
  if (snapshot_round_ != round()) take_snapshot();
  const int slot = slot_of_partition_[k];
  if (slot == open_slot_) return;
  if (open_slot_ < 0) {
    std::fill(message_.begin(), message_.end(), 0);
  } else {
    stash_slot(open_slot_, loss_so_far - slot_loss_start_);
  }
  open_slot_ = slot;
  slot_loss_start_ = loss_so_far;
  for (at::Tensor& p : params_) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
  load_parameters(round() - back_of_partition_[k]);
}

void SequentialCodingStrategy::stash_slot(int slot, double loss) {
  at::Tensor flat = at::from_blob(message_.data(), {message_length()}, at::TensorOptions(dtype_))
                        .narrow(0, slot * slot_length(), slot_length());
  std::int64_t offset = 0;
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : params_) {
    at::Tensor part = flat.narrow(0, offset, p.numel());
    p.grad().defined() ? part.copy_(p.grad().reshape(-1)) : part.zero_();
    grads.push_back(p.grad());
    offset += p.numel();
  }
  flat[count_].fill_(loss);
  flat[count_ + 1].fill_(first_nonfinite(grads));
  loss_units_ +=
      static_cast<double>(std::count(slot_of_partition_.begin(), slot_of_partition_.end(), slot));
}

void SequentialCodingStrategy::step(torch::optim::Optimizer& optimizer) {
  BRAID_CHECK(!params_.empty(), "step() before attach()");
  if (!assigned_) {
    throw ConfigError(
        "sync.strategy 'sequential_coding' needs its batch assignment: before computing a step, "
        "call strategy().assign_batch(step, rank, world), and before each partition k "
        "strategy().begin_partition(k, loss so far), as braid train does (docs/embedding.md)");
  }
  if (snapshot_round_ != round()) take_snapshot();
  if (computed_ && open_slot_ >= 0) stash_slot(open_slot_, loss_ - slot_loss_start_);
  if (computed_ && open_slot_ < 0) std::fill(message_.begin(), message_.end(), 0);
  load_parameters(round());
  at::from_blob(message_.data(), {message_length()}, at::TensorOptions(dtype_))[-1].fill_(
      computed_ ? 0 : 1);
  compute_done_ = Clock::now();
  const std::int64_t r = round();
  const bool root = channel_->rank() == 0;
  OpDesc desc{"sequential_coding", code_.scheme(), message_length(), dtype_of(dtype_), 0};
  desc.partial = true;  // the root may go on without stragglers
  Work work = channel_->submit(
      desc, [this, root, r](OpContext& ctx) { root ? run_root(ctx, r) : run_member(ctx, r); });
  {
    trace::Scope scope("wait for coded gradients", "comm");
    const auto start = Clock::now();
    work.wait();
    exposed_comm_s_ += seconds(Clock::now() - start);
  }
  apply_result(optimizer);
  open_slot_ = -1;
  loss_units_ = 0;
  computed_ = true;
  ++steps_;
}

// Whether round `round` may end with `arrived`: the ranks missing keep the pattern inside the
// model and the job due decodes without them.
bool SequentialCodingStrategy::may_end(const std::vector<char>& arrived) const {
  std::vector<char> straggled(arrived.size());
  for (std::size_t w = 0; w < arrived.size(); ++w) straggled[w] = !arrived[w];
  if (std::count(straggled.begin(), straggled.end(), 1) == 0) return true;
  if (!code_.conforms(straggled)) return false;
  SequentialCode trial = code_;
  trial.record(arrived);
  return trial.due() < 0 || trial.decode(trial.due()).has_value();
}

// Whether the root may stop waiting: (1 + mu) x the fastest arrival passed. Under forced
// stragglers (tests) instead: every other rank arrived; the forced ones are taken out of `used`.
bool SequentialCodingStrategy::graced(std::int64_t round, std::vector<char>& used,
                                      double fastest) const {
  if (!options_.forced_stragglers) {
    return seconds(Clock::now() - round_start_) >= (1 + options_.mu) * fastest;
  }
  bool others = true;
  for (int w = 1; w < static_cast<int>(used.size()); ++w) {
    const bool forced = options_.forced_stragglers(round, w);
    if (forced) used[w] = 0;
    others = others && (used[w] || forced);
  }
  return others;
}

// The root's receives of one round: every rank's message, or, once the grace after the fastest
// arrival passed, enough of them (may_end). Returns which ranks' messages are used.
std::vector<char> SequentialCodingStrategy::wait_for_round(
    OpContext& ctx, std::int64_t round, std::vector<std::unique_ptr<std::vector<char>>>& messages,
    bool& fell_back) {
  const int n = ctx.size();
  const std::size_t bytes = message_.size();
  std::vector<RequestPtr> pending(n);
  for (int peer = 1; peer < n; ++peer) {
    messages[peer] = std::make_unique<std::vector<char>>(bytes);
    pending[peer] = ctx.recv(messages[peer]->data(), bytes, peer);
  }
  std::vector<char> arrived(n, 0);
  arrived[0] = 1;
  int missing = n - 1;
  double fastest = seconds(compute_done_ - round_start_);
  std::vector<char> refused;  // the last set may_end refused: not asked again until it changes
  for (int spins = 0; missing > 0; ++spins) {
    for (int peer = 1; peer < n; ++peer) {
      if (!pending[peer] || !pending[peer]->test()) continue;
      pending[peer].reset();
      arrived[peer] = 1;
      --missing;
      fastest = std::min(fastest, seconds(Clock::now() - round_start_));
    }
    if (missing == 0) break;
    std::vector<char> used = arrived;
    if (graced(round, used, fastest) && used != refused) {
      if (may_end(used)) {
        arrived = used;
        break;
      }
      refused = used;
    }
    if ((spins & 63) == 63 &&
        (Clock::now() >= ctx.deadline() || (ctx.aborted() && ctx.aborted()->load()))) {
      if (ctx.aborted() && ctx.aborted()->load()) ctx.fail_wait("coded gradients of every rank");
      throw TimeoutError(str_cat("rank 0: ", ctx.op(), " timed out waiting for ranks ",
                                 ranks_list(arrived), " in round ", round));
    }
    if (spins >= 4096) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    } else if (spins >= 64) {
      std::this_thread::yield();
    }
  }
  if (options_.forced_stragglers && missing == 0) {
    // Every message came; forced stragglers are dropped where the model allows.
    std::vector<char> used = arrived;
    if (graced(round, used, fastest) && may_end(used)) arrived = used;
  }
  for (int peer = 1; peer < n; ++peer) {
    if (pending[peer]) results_.late().add({std::move(messages[peer]), std::move(pending[peer])});
  }
  fell_back = !refused.empty() && std::count(arrived.begin(), arrived.end(), 1) == n;
  return arrived;
}

// The root adds up a rank's uncoded chunks and keeps its coded results, per job.
void SequentialCodingStrategy::accumulate(int rank, const char* message) {
  const at::Tensor all =
      at::from_blob(const_cast<char*>(message), {message_length()}, at::TensorOptions(dtype_))
          .to(at::kDouble);
  if (all[-1].item<double>() != 0) {
    throw CommError(str_cat("rank ", rank, " sent a skipped step's message for round ", round(),
                            ", which the root is still waiting for"));
  }
  const std::vector<MiniTask>& tasks = code_.tasks(rank);
  for (int slot = 0; slot < static_cast<int>(tasks.size()); ++slot) {
    const MiniTask& task = tasks[static_cast<std::size_t>(slot)];
    if (task.job < 0) continue;
    const at::Tensor values = all.narrow(0, slot * slot_length(), count_ + 1);
    const double bad = all[slot * slot_length() + count_ + 1].item<double>();
    Job& job = jobs_[task.job];
    if (task.group < 0) {
      if (!job.uncoded.defined()) job.uncoded = at::zeros({count_ + 1}, at::kDouble);
      job.uncoded.add_(values);
      if (bad >= 0 && (job.bad_rank < 0 || rank < job.bad_rank)) {
        job.bad_rank = rank;
        job.bad_parameter = bad;
      }
    } else {
      job.coded[task.group][rank] = {values.clone(), bad};
    }
  }
}

// The decoded average of job `job` (its uncoded sum plus each group's sum_i a_i f_i, over the
// job's units), its loss, and the first non-finite finding among what was used.
void SequentialCodingStrategy::decode_into(std::int64_t job, const std::vector<char>& arrived,
                                           at::Tensor result) {
  SequentialCode trial = code_;
  trial.record(arrived);
  const auto a = trial.decode(job);
  if (!a) {
    throw DecodeError(str_cat("sequential coding: job ", job, " does not decode after round ",
                              round(), " with ranks ", ranks_list(arrived),
                              " missing: the straggler pattern left the model"));
  }
  Job& parts = jobs_[job];
  at::Tensor sum =
      parts.uncoded.defined() ? parts.uncoded.clone() : at::zeros({count_ + 1}, at::kDouble);
  int bad_rank = parts.bad_rank;
  double bad_parameter = parts.bad_parameter;
  for (std::size_t b = 0; b < a->size(); ++b) {
    for (int w = 0; w < code_.workers(); ++w) {
      const double c = (*a)[b][static_cast<std::size_t>(w)];
      if (c == 0) continue;
      const auto& [values, bad] = parts.coded.at(static_cast<int>(b)).at(w);
      sum.add_(values, c);
      if (bad >= 0 && (bad_rank < 0 || w < bad_rank)) {
        bad_rank = w;
        bad_parameter = bad;
      }
    }
  }
  sum.div_(code_.units());
  result.narrow(0, 0, count_ + 1).copy_(sum);
  result[count_ + kHasUpdate].fill_(1);
  result[count_ + kBadParameter].fill_(bad_parameter);
  result[count_ + kBadRank].fill_(bad_rank);
  jobs_.erase(jobs_.begin(), jobs_.upper_bound(job));
}

void SequentialCodingStrategy::run_root(OpContext& ctx, std::int64_t round) {
  results_.reap_root(ctx);
  const int n = ctx.size();
  std::vector<std::unique_ptr<std::vector<char>>> messages(n);
  bool fell_back = false;
  const std::vector<char> arrived = wait_for_round(ctx, round, messages, fell_back);
  for (int w = 0; w < n; ++w) {
    if (arrived[w]) accumulate(w, w == 0 ? message_.data() : messages[w]->data());
  }
  auto memory = std::make_shared<std::vector<char>>(result_.size(), 0);
  at::Tensor result = at::from_blob(memory->data(), {result_length()}, at::TensorOptions(dtype_));
  result[count_ + kBadParameter].fill_(-1);
  result[count_ + kBadRank].fill_(-1);
  result[count_ + kFallback].fill_(fell_back ? 1 : 0);
  for (int w = 0; w < n; ++w) result[count_ + 5 + w].fill_(arrived[w] ? 1 : 0);
  const std::int64_t job = round - code_.delay();
  if (job >= 0) decode_into(job, arrived, result);
  results_.send_result(ctx, round, memory, result_);
}

void SequentialCodingStrategy::run_member(OpContext& ctx, std::int64_t round) {
  results_.member_step(ctx, round, message_, result_);
}

void SequentialCodingStrategy::quiesce() {
  if (!params_.empty()) results_.quiesce(*channel_, "sequential_coding drain", code_.scheme());
}

// Every rank: the next round's schedule from the ranks the root used, then the update (if a
// job was due).
void SequentialCodingStrategy::apply_result(torch::optim::Optimizer& optimizer) {
  at::Tensor flat = at::from_blob(result_.data(), {result_length()}, at::TensorOptions(dtype_));
  const int n = code_.workers();
  std::vector<char> arrived(n);
  for (int w = 0; w < n; ++w) arrived[w] = flat[count_ + 5 + w].item<double>() != 0;
  if (std::count(arrived.begin(), arrived.end(), 1) < n) ++straggled_;
  if (flat[count_ + kFallback].item<double>() != 0) {
    ++fallbacks_;
    // One line per kFallbackLogSteps steps at most: a noisy machine can fall back often.
    if (channel_->rank() == 0 && steps_ >= next_fallback_log_) {
      spdlog::warn(
          "sequential coding: step {}: the late ranks would break the straggler model (burst {}, "
          "window {}, lambda {}); the step waited for every rank ({} of {} steps so far)",
          steps_, options_.burst, options_.window, options_.lambda, fallbacks_,
          steps_ - origin_ + 1);
      next_fallback_log_ = steps_ + kFallbackLogSteps;
    }
  }
  code_.record(arrived);
  if (flat[count_ + kHasUpdate].item<double>() == 0) {
    global_loss_ = loss_units_ > 0 ? std::optional<double>(loss_ / loss_units_) : std::nullopt;
    return;
  }
  global_loss_ = flat[count_ + kLoss].item<double>();
  apply_decoded(params_, flat, static_cast<int>(flat[count_ + kBadParameter].item<double>()),
                static_cast<int>(flat[count_ + kBadRank].item<double>()), steps_ - code_.delay(),
                *guard_, options_.clip_norm, optimizer);
}

NamedTensors SequentialCodingStrategy::state() const {
  return {{"steps", at::scalar_tensor(steps_, at::kLong)}};
}

// The pipeline starts again at the restored step (the jobs in flight are not in checkpoints).
void SequentialCodingStrategy::load_state(const NamedTensors& state) {
  for (const auto& [name, tensor] : state) {
    if (name == "steps") steps_ = tensor.item<std::int64_t>();
  }
  origin_ = steps_;
  code_ = SequentialCode(options_.scheme, comm_->size(), options_.burst, options_.window,
                         options_.lambda);
  snapshot_round_ = loaded_round_ = -1;
  jobs_.clear();
  results_.restart_at(0);
  if (channel_->rank() == 0 && steps_ > 0) {
    spdlog::info(
        "sequential coding: the pipeline starts again at step {}: the jobs in flight when the "
        "checkpoint was written are not in it, so the next {} steps make no update",
        steps_, code_.delay());
  }
}

SyncStats SequentialCodingStrategy::stats() const {
  SyncStats stats{comm_->bytes_sent() + channel_->bytes_sent(),
                  comm_->bytes_recv() + channel_->bytes_recv(), exposed_comm_s_};
  stats.bytes_dense = stats.bytes_sent;
  stats.skipped_steps = guard_ ? guard_->skipped() : 0;
  return stats;
}

}  // namespace braid
