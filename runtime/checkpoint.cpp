#include "runtime/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "collectives/communicator.h"
#include "common/error.h"
#include "optimizers/replicas.h"
#include "optimizers/sync_strategy.h"
#include "runtime/durable_file.h"

namespace braid {

namespace fs = std::filesystem;
using torch::serialize::InputArchive;
using torch::serialize::OutputArchive;

namespace {

constexpr char kMagic[8] = {'B', 'R', 'A', 'I', 'D', 'C', 'K', 'P'};
// 2: the resume fingerprint ("meta/resume") was added.
constexpr std::uint32_t kVersion = 2;
constexpr std::size_t kHeader =
    sizeof kMagic + sizeof(std::uint32_t) + sizeof(std::uint64_t) + sizeof(std::uint32_t);

std::uint32_t crc32_of(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  std::size_t offset = 0;
  while (offset < bytes.size()) {
    auto chunk = static_cast<uInt>(std::min<std::size_t>(bytes.size() - offset, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + offset), chunk);
    offset += chunk;
  }
  return static_cast<std::uint32_t>(crc);
}

std::string step_dir_name(std::int64_t step) { return fmt::format("step-{:08d}", step); }

// The step a "step-NNNNNNNN" name stands for.
std::optional<std::int64_t> parse_step(const std::string& name) {
  constexpr std::size_t kPrefix = 5;
  if (name.rfind("step-", 0) != 0 || name.size() == kPrefix || name.size() > kPrefix + 18) {
    return std::nullopt;
  }
  for (std::size_t i = kPrefix; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
  }
  return std::stoll(name.substr(kPrefix));
}

std::string rank_file_name(std::int64_t rank) { return fmt::format("rank-{:05d}.ckpt", rank); }

// The step `<checkpoints dir>/latest` names, if it names one.
std::optional<std::int64_t> read_latest(const fs::path& checkpoints) {
  std::string name;
  if (std::ifstream in(checkpoints / "latest"); in >> name) return parse_step(name);
  return std::nullopt;
}

// `latest` is the commit point: without it no save ever completed. A step directory whose
// `ranks` file names N and which holds every rank-*.ckpt of 0..N-1 is complete all the same
// (a `latest` lost afterwards); anything else in one (temporary files of a save that was
// interrupted) is not a checkpoint. Rank 0 only.
struct Leftovers {
  std::vector<std::string> complete;     // step directories a `latest` could name
  std::vector<std::string> interrupted;  // step directories of an unfinished save
  std::vector<std::string> foreign;      // anything else in checkpoints/
};

Leftovers leftovers_without_pointer(const fs::path& dir) {
  Leftovers found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!parse_step(name) || !entry.is_directory()) {
      found.foreign.push_back(name);
      continue;
    }
    std::int64_t ranks = 0;
    bool complete = static_cast<bool>(std::ifstream(entry.path() / "ranks") >> ranks) && ranks > 0;
    for (std::int64_t r = 0; complete && r < ranks; ++r) {
      complete = fs::is_regular_file(entry.path() / rank_file_name(r));
    }
    (complete ? found.complete : found.interrupted).push_back(name);
  }
  return found;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string list;
  for (int r : ranks) list += (list.empty() ? "" : ", ") + std::to_string(r);
  return list;
}

// Collective: the ranks for which `ok` is false; the same list on every rank.
std::vector<int> failing_ranks(Communicator& comm, bool ok) {
  std::vector<std::int64_t> all(comm.size());
  std::int64_t mine = ok ? 1 : 0;
  comm.allgather(Buffer{&mine, 1, DType::kInt64}, Buffer{all.data(), comm.size(), DType::kInt64})
      .wait();
  std::vector<int> failing;
  for (int r = 0; r < comm.size(); ++r) {
    if (all[r] == 0) failing.push_back(r);
  }
  return failing;
}

// Collective: a CheckpointError on every rank when `error` is set on any.
void agree_or_throw(Communicator& comm, const std::string& error, const std::string& what) {
  const std::vector<int> failing = failing_ranks(comm, error.empty());
  if (failing.empty()) return;
  throw CheckpointError(
      str_cat(what, " on rank(s) ", rank_list(failing), error.empty() ? "" : ": " + error));
}

std::string encode_fingerprint(const ResumeFingerprint& fingerprint) {
  std::string text;
  for (const auto& [key, value] : fingerprint) text += key + "=" + value + "\n";
  return text;
}

ResumeFingerprint decode_fingerprint(const std::string& text) {
  ResumeFingerprint fingerprint;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) fingerprint.emplace_back(line.substr(0, eq), line.substr(eq + 1));
  }
  return fingerprint;
}

at::Tensor scalar(std::int64_t v) { return at::scalar_tensor(v, at::kLong); }

std::int64_t read_int(InputArchive& archive, const char* key) {
  at::Tensor t;
  archive.read(key, t);
  return t.item<std::int64_t>();
}

// The LibTorch archive of one rank's checkpoint: flat dotted names (not Module::save's nested
// archives) so loading can name what is missing.
std::string serialize(const TrainPosition& position, int rank, int world,
                      const ResumeFingerprint& fingerprint, const torch::nn::Module& model,
                      const torch::optim::Optimizer& optimizer, const SyncStrategy& strategy) {
  OutputArchive archive;
  archive.write("meta/step", scalar(position.step));
  archive.write("meta/epoch", scalar(position.epoch));
  archive.write("meta/step_in_epoch", scalar(position.step_in_epoch));
  archive.write("meta/time_s", at::scalar_tensor(position.time_s, at::kDouble));
  archive.write("meta/epoch_offset", scalar(position.epoch_offset));
  archive.write("meta/bytes_sent", scalar(static_cast<std::int64_t>(position.bytes_sent)));
  archive.write("meta/bytes_recv", scalar(static_cast<std::int64_t>(position.bytes_recv)));
  archive.write("meta/bytes_dense", scalar(static_cast<std::int64_t>(position.bytes_dense)));
  archive.write("meta/skipped_steps", scalar(position.skipped_steps));
  archive.write("meta/world", scalar(world));
  archive.write("meta/rank", scalar(rank));
  archive.write("meta/resume", c10::IValue(encode_fingerprint(fingerprint)));
  OutputArchive model_archive, optimizer_archive, strategy_archive;
  for (const auto& item : model.named_parameters()) model_archive.write(item.key(), item.value());
  for (const auto& item : model.named_buffers()) {
    model_archive.write(item.key(), item.value(), true);
  }
  optimizer.save(optimizer_archive);
  for (const auto& [name, tensor] : strategy.state()) strategy_archive.write(name, tensor);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("strategy", strategy_archive);
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    archive.write("rng", generator.get_state());
  }
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

// Magic, version, payload length and CRC-32, then the payload.
std::string frame(const std::string& payload) {
  std::string file(kMagic, sizeof kMagic);
  const std::uint32_t crc = crc32_of(payload);
  const std::uint64_t length = payload.size();
  file.append(reinterpret_cast<const char*>(&kVersion), sizeof kVersion);
  file.append(reinterpret_cast<const char*>(&length), sizeof length);
  file.append(reinterpret_cast<const char*>(&crc), sizeof crc);
  return file + payload;
}

// The payload of a checkpoint file, or a CheckpointError saying what is wrong with it.
std::string unframe(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError("cannot open it (missing for this rank?)");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < kHeader || bytes.compare(0, sizeof kMagic, kMagic, sizeof kMagic) != 0) {
    throw CheckpointError("not a braid checkpoint (bad magic)");
  }
  std::uint32_t version, crc;
  std::uint64_t length;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&length, bytes.data() + 12, 8);
  std::memcpy(&crc, bytes.data() + 20, 4);
  if (version != kVersion) {
    throw CheckpointError(str_cat(
        "format version ", version, "; this braid reads version ", kVersion,
        version < kVersion ? " (older files lack the resume fingerprint: resume with the braid "
                             "that wrote them, or start a new run.dir)"
                           : " (written by a newer braid)"));
  }
  if (bytes.size() - kHeader != length) {
    throw CheckpointError(str_cat("truncated or padded: ", bytes.size() - kHeader,
                                  " payload bytes, header says ", length));
  }
  std::string payload = bytes.substr(kHeader);
  if (crc32_of(payload) != crc) throw CheckpointError("corrupt: CRC-32 mismatch");
  return payload;
}

// Everything that makes a file unusable whatever the run: the causes that make ranks fall back.
InputArchive open_archive(const std::string& path, std::int64_t step, int rank) {
  const std::string payload = unframe(path);
  InputArchive archive;
  try {
    std::istringstream in(payload);
    archive.load_from(in);
  } catch (const std::exception& e) {
    throw CheckpointError(str_cat("not a readable archive: ", e.what()));
  }
  if (read_int(archive, "meta/step") != step || read_int(archive, "meta/rank") != rank) {
    throw CheckpointError(str_cat("holds step ", read_int(archive, "meta/step"), " of rank ",
                                  read_int(archive, "meta/rank"), ", not step ", step, " of rank ",
                                  rank, " (a file copied to the wrong place?)"));
  }
  return archive;
}

// Collective: the chosen checkpoint belongs to this run. Nothing has been modified yet.
void check_compatible(Communicator& comm, InputArchive& archive, const std::string& path,
                      const ResumeFingerprint& fingerprint, bool any_world) {
  std::string changes, mismatch;
  try {
    c10::IValue stored;
    archive.read("meta/resume", stored);
    changes = fingerprint_changes(decode_fingerprint(stored.toStringRef()), fingerprint, path);
    const std::int64_t world = read_int(archive, "meta/world");
    if (world != comm.size() && !any_world) {
      mismatch =
          str_cat(path, " was written by a run of ", world, " ranks; this run has ", comm.size());
    }
  } catch (const std::exception& e) {
    mismatch = str_cat(path, ": ", e.what());
  }
  const std::vector<int> changed = failing_ranks(comm, changes.empty());
  if (!changed.empty()) {
    throw ConfigError(
        str_cat("resume: ",
                changes.empty() ? str_cat("rank(s) ", rank_list(changed), " found a changed config")
                                : changes,
                "; use a new run.dir or restore the value"));
  }
  agree_or_throw(comm, mismatch, "the checkpoint does not match this run");
}

// Local: copies the archive into the run's objects. The caller makes the ranks agree.
TrainPosition restore_state(InputArchive& archive, torch::nn::Module& model,
                            torch::optim::Optimizer& optimizer, SyncStrategy& strategy) {
  InputArchive model_archive, optimizer_archive, strategy_archive;
  archive.read("model", model_archive);
  auto restore = [&](const std::string& name, at::Tensor& target, bool is_buffer) {
    at::Tensor stored;
    if (!model_archive.try_read(name, stored, is_buffer)) {
      throw CheckpointError(str_cat("has no ", is_buffer ? "buffer" : "parameter", " '", name,
                                    "' (was it written for another model?)"));
    }
    if (stored.sizes() != target.sizes() || stored.scalar_type() != target.scalar_type()) {
      std::ostringstream message;
      message << "'" << name << "' is " << stored.sizes() << " " << stored.scalar_type()
              << " in the checkpoint but " << target.sizes() << " " << target.scalar_type()
              << " in the model";
      throw CheckpointError(message.str());
    }
    torch::NoGradGuard no_grad;
    target.copy_(stored);
  };
  for (auto& item : model.named_parameters()) restore(item.key(), item.value(), false);
  for (auto& item : model.named_buffers()) restore(item.key(), item.value(), true);
  archive.read("optimizer", optimizer_archive);
  optimizer.load(optimizer_archive);
  archive.read("strategy", strategy_archive);
  // Every stored entry: a strategy may create its state lazily (per-bucket error feedback), so
  // a fresh one cannot list the names it will be given.
  NamedTensors state;
  for (const std::string& name : strategy_archive.keys()) {
    at::Tensor tensor;
    strategy_archive.read(name, tensor);
    state.emplace_back(name, tensor);
  }
  strategy.load_state(state);
  at::Tensor rng;
  archive.read("rng", rng);
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng);
  }
  at::Tensor time_s;
  archive.read("meta/time_s", time_s);
  TrainPosition position;
  position.step = read_int(archive, "meta/step");
  position.epoch = read_int(archive, "meta/epoch");
  position.step_in_epoch = read_int(archive, "meta/step_in_epoch");
  position.epoch_offset = read_int(archive, "meta/epoch_offset");
  position.time_s = time_s.item<double>();
  position.bytes_sent = static_cast<std::uint64_t>(read_int(archive, "meta/bytes_sent"));
  position.bytes_recv = static_cast<std::uint64_t>(read_int(archive, "meta/bytes_recv"));
  position.bytes_dense = static_cast<std::uint64_t>(read_int(archive, "meta/bytes_dense"));
  position.world = static_cast<int>(read_int(archive, "meta/world"));
  // Absent from checkpoints written before it was added: none skipped then, as far as known.
  if (at::Tensor skipped; archive.try_read("meta/skipped_steps", skipped)) {
    position.skipped_steps = skipped.item<std::int64_t>();
  }
  return position;
}

// Collective: restores the step every rank can read, after checking it belongs to this run.
TrainPosition restore_agreed(Communicator& comm, InputArchive& archive, const std::string& path,
                             const ResumeFingerprint& fingerprint, torch::nn::Module& model,
                             torch::optim::Optimizer& optimizer, SyncStrategy& strategy) {
  check_compatible(comm, archive, path, fingerprint,
                   strategy.state_is_replicated() || strategy.per_rank_state_may_reset());
  std::string error;
  TrainPosition position;
  try {
    position = restore_state(archive, model, optimizer, strategy);
  } catch (const std::exception& e) {
    error = str_cat(path, ": ", e.what());
  }
  agree_or_throw(comm, error, "restoring the checkpoint failed");
  // Ranks that restored different states must not train on as if they were replicas (a
  // local-update method's replicas differ legitimately within an outer round).
  if (strategy.parameters_replicated()) check_replicas_identical(comm, model.parameters());
  return position;
}

}  // namespace

Checkpointer::Checkpointer(std::string run_dir, int rank, int world, ResumeFingerprint fingerprint,
                           int keep)
    : dir_((fs::path(run_dir) / "checkpoints").string()),
      rank_(rank),
      world_(world),
      keep_(keep),
      fingerprint_(std::move(fingerprint)) {}

std::string Checkpointer::rank_file(std::int64_t step, int rank) const {
  return (fs::path(dir_) / step_dir_name(step) / rank_file_name(rank)).string();
}

// Rank 0 writes the rank count of a step next to its file (step-N/ranks), so a later run can
// tell a checkpoint of another rank count from one with a missing file. Unreadable: 0.
int Checkpointer::ranks_of(Communicator& comm, std::int64_t step) const {
  std::int64_t count = 0;
  if (rank_ == 0) {
    std::ifstream in(fs::path(dir_) / step_dir_name(step) / "ranks");
    if (!(in >> count) || count < 1) count = 0;
  }
  comm.broadcast(Buffer{&count, 1, DType::kInt64}, 0).wait();
  return static_cast<int>(count);
}

void Checkpointer::save(Communicator& comm, const TrainPosition& position,
                        const torch::nn::Module& model, const torch::optim::Optimizer& optimizer,
                        const SyncStrategy& strategy) {
  const std::string path = rank_file(position.step, rank_);
  const std::string name = step_dir_name(position.step);
  std::string error;
  try {
    const std::string file =
        frame(serialize(position, rank_, world_, fingerprint_, model, optimizer, strategy));
    fs::create_directories(fs::path(path).parent_path());
    sync_path(dir_);  // the new step directory's entry
    sync_path(fs::path(dir_).parent_path());
    write_durably(path, file);
    if (rank_ == 0) write_durably(fs::path(path).parent_path() / "ranks", str_cat(world_, "\n"));
  } catch (const std::exception& e) {
    error = e.what();
  }
  agree_or_throw(comm, error,
                 str_cat("checkpoint ", name,
                         " was not written (`latest` still names the previous checkpoint)"));
  if (rank_ == 0) {
    try {
      write_durably(fs::path(dir_) / "latest", name + "\n");
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  agree_or_throw(comm, error, str_cat("`latest` was not moved to ", name));
  if (rank_ == 0) prune(position.step);
  current_ = path;
}

// Keeps the `keep_` newest steps up to `newest`. Newer directories are left alone: other ranks
// may already be writing the next checkpoint, and leftovers of a failed save or of a timeline
// abandoned by a fallback are never loaded; they are overwritten or pruned once passed.
void Checkpointer::prune(std::int64_t newest) const {
  std::vector<std::pair<std::int64_t, fs::path>> steps;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    auto step = parse_step(entry.path().filename().string());
    if (step && entry.is_directory(ec)) steps.emplace_back(*step, entry.path());
  }
  std::sort(steps.begin(), steps.end(), [](const auto& a, const auto& b) { return a > b; });
  int kept = 0;
  for (const auto& [step, path] : steps) {
    if (step > newest || kept++ < keep_) continue;
    fs::remove_all(path, ec);
    if (ec) {
      spdlog::warn("cannot remove old checkpoint {}: {}", path.string(), ec.message());
    }
  }
}

std::vector<std::int64_t> Checkpointer::candidate_steps(Communicator& comm) const {
  // Rank 0 owns `latest`; it names the candidates: the step of `latest`, then older ones.
  enum : std::int64_t { kNone, kFound, kNoPointer, kUnlistable };
  std::int64_t header[2] = {kNone, 0};
  std::vector<std::int64_t> steps;
  if (rank_ == 0) {
    try {
      const std::optional<std::int64_t> latest = read_latest(dir_);
      if (!fs::exists(dir_) || fs::is_empty(dir_)) {
        header[0] = kNone;
      } else if (!latest) {
        const Leftovers left = leftovers_without_pointer(dir_);
        if (left.complete.empty() && left.foreign.empty()) {
          // Only the remains of an interrupted first save: there is nothing to resume.
          spdlog::warn(
              "{} holds only the remains of a checkpoint save that never completed ({}; no "
              "`latest`): starting from step 0, and they are overwritten or pruned as training "
              "goes",
              dir_, join(left.interrupted));
          header[0] = kNone;
        } else {
          if (!left.complete.empty()) {
            spdlog::error("complete checkpoint(s) without a `latest` pointer in {}: {}", dir_,
                          join(left.complete));
          }
          header[0] = kNoPointer;
        }
      } else {
        header[0] = kFound;
        for (const auto& entry : fs::directory_iterator(dir_)) {
          auto step = parse_step(entry.path().filename().string());
          if (step && *step < *latest && entry.is_directory()) steps.push_back(*step);
        }
        std::sort(steps.rbegin(), steps.rend());
        steps.insert(steps.begin(), *latest);
      }
    } catch (const std::exception& e) {
      spdlog::error("cannot list checkpoints in {}: {}", dir_, e.what());
      header[0] = kUnlistable;
    }
    header[1] = static_cast<std::int64_t>(steps.size());
  }
  comm.broadcast(Buffer{header, 2, DType::kInt64}, 0).wait();
  if (header[0] == kNoPointer) {
    throw CheckpointError(str_cat(
        "checkpoint directory ", dir_,
        " has files but no readable 'latest' pointer; refusing to restart from step 0 over it "
        "(to resume from a complete step directory, one with its `ranks` file and every rank's "
        ".ckpt, write its name into ",
        (fs::path(dir_) / "latest").string(), "; or choose another run.dir)"));
  }
  if (header[0] == kUnlistable) {
    throw CheckpointError(str_cat("rank 0 cannot list the checkpoints in ", dir_));
  }
  steps.resize(header[1]);
  if (header[1] > 0) comm.broadcast(Buffer{steps.data(), header[1], DType::kInt64}, 0).wait();
  return steps;
}

std::optional<TrainPosition> Checkpointer::load_latest(Communicator& comm, torch::nn::Module& model,
                                                       torch::optim::Optimizer& optimizer,
                                                       SyncStrategy& strategy) {
  const std::vector<std::int64_t> steps = candidate_steps(comm);
  if (steps.empty()) return std::nullopt;
  std::string problems;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    // A run of another rank count wrote it: with replicated state any rank's file will do (rank
    // r reads r mod the old count); per-rank state is carried over only where it may start
    // again from zero (1-bit Adam's error buffers), never where it holds undelivered gradient.
    int source = rank_;
    if (const int written_by = ranks_of(comm, steps[i]); written_by > 0 && written_by != world_) {
      if (!strategy.state_is_replicated()) {
        if (!strategy.per_rank_state_may_reset()) {
          throw ConfigError(str_cat("resume: ", step_dir_name(steps[i]), " in ", dir_,
                                    " was written by ", written_by, " ranks; its per-rank state, ",
                                    strategy.per_rank_state(), ", cannot be carried to ", world_,
                                    " ranks; rerun with ", written_by,
                                    " ranks or use a new run.dir (nothing was changed)"));
        }
        strategy.reset_per_rank_state_on_load();
        if (rank_ == 0) {
          spdlog::warn("resume: {} was written by {} ranks; at {} ranks {} start again from zero",
                       step_dir_name(steps[i]), written_by, world_, strategy.per_rank_state());
        }
      }
      source = rank_ % written_by;
    }
    const std::string path = rank_file(steps[i], source);
    std::optional<InputArchive> archive;
    std::string cause;
    try {
      archive = open_archive(path, steps[i], source);
    } catch (const std::exception& e) {
      cause = e.what();
      // Before the agreement, so the cause is printed even if another rank ends the job first.
      spdlog::warn("checkpoint {} is unreadable: {}", path, cause);
    }
    const std::vector<int> bad = failing_ranks(comm, cause.empty());
    if (bad.empty()) {
      TrainPosition position =
          restore_agreed(comm, *archive, path, fingerprint_, model, optimizer, strategy);
      current_ = path;
      return position;
    }
    const std::string name = step_dir_name(steps[i]);
    if (rank_ == 0) {
      spdlog::warn("checkpoint {} is unreadable on rank(s) {}; {}", name, rank_list(bad),
                   i + 1 < steps.size() ? "falling back to " + step_dir_name(steps[i + 1])
                                        : std::string("no older checkpoint"));
    }
    for (int r : bad) {
      problems += fmt::format("{}{}/{}", problems.empty() ? "" : "; ", name, rank_file_name(r));
      if (r == rank_) problems += ": " + cause;
    }
  }
  throw CheckpointError(str_cat("no checkpoint in ", dir_, " is readable on every rank (", problems,
                                "); refusing to restart from step 0 over them (choose another "
                                "run.dir to start over)"));
}

namespace {

// The file checkpoint_weights() reads for `path`, or "" when `path` is no checkpoint at all.
std::string rank0_file(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path.string();
  if (fs::is_regular_file(path / rank_file_name(0), ec)) return (path / rank_file_name(0)).string();
  for (const fs::path& dir : {path / "checkpoints", path}) {
    if (const auto step = read_latest(dir))
      return (dir / step_dir_name(*step) / rank_file_name(0)).string();
  }
  return "";
}

}  // namespace

bool is_checkpoint(const std::string& path) {
  const std::string file = rank0_file(path);
  if (file.empty()) return false;
  if (file != path) return true;  // a directory with a `latest` pointer or a rank file
  char magic[sizeof kMagic] = {};
  std::ifstream in(file, std::ios::binary);
  return in.read(magic, sizeof magic) && std::memcmp(magic, kMagic, sizeof magic) == 0;
}

std::vector<std::pair<std::string, at::Tensor>> checkpoint_weights(const std::string& path) {
  const std::string file = rank0_file(path);
  if (file.empty()) {
    throw CheckpointError(str_cat(path,
                                  " is neither a file nor a run, checkpoints or step "
                                  "directory with a `latest` pointer"));
  }
  std::vector<std::pair<std::string, at::Tensor>> weights;
  try {
    InputArchive archive, model;
    std::istringstream in(unframe(file));
    archive.load_from(in);
    archive.read("model", model);
    for (const std::string& name : model.keys()) {
      c10::IValue value;
      model.read(name, value);
      if (value.isTensor()) weights.emplace_back(name, value.toTensor());
    }
  } catch (const std::exception& e) {
    throw CheckpointError(str_cat(file, ": ", e.what()));
  }
  return weights;
}

}  // namespace braid
