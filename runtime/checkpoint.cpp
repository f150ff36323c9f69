#include "runtime/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/core.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "collectives/communicator.h"
#include "common/error.h"
#include "optimizers/sync_strategy.h"

namespace braid {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'B', 'R', 'A', 'I', 'D', 'C', 'K', 'P'};
constexpr std::uint32_t kVersion = 1;

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

void write_atomically(const fs::path& path, const std::string& header, const std::string& payload) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(payload.data(), static_cast<std::streamsize>(payload.size()));
    out.flush();
    if (!out) throw CheckpointError(str_cat("cannot write checkpoint file ", tmp.string()));
  }
  // rename() is atomic within a file system: readers see the old file or the whole new one.
  fs::rename(tmp, path);
}

at::Tensor scalar(std::int64_t v) { return at::scalar_tensor(v, at::kLong); }

std::string step_dir_name(std::int64_t step) { return fmt::format("step-{:08d}", step); }

}  // namespace

Checkpointer::Checkpointer(std::string run_dir, int rank, int world, int keep)
    : dir_((fs::path(run_dir) / "checkpoints").string()), rank_(rank), world_(world), keep_(keep) {}

void Checkpointer::save(Communicator& comm, const TrainPosition& position,
                        const torch::nn::Module& model, const torch::optim::Optimizer& optimizer,
                        const SyncStrategy& strategy) {
  torch::serialize::OutputArchive archive;
  archive.write("meta/step", scalar(position.step));
  archive.write("meta/epoch", scalar(position.epoch));
  archive.write("meta/step_in_epoch", scalar(position.step_in_epoch));
  archive.write("meta/world", scalar(world_));
  archive.write("meta/rank", scalar(rank_));
  // Flat dotted names (not Module::save's nested archives) so loading can name what is missing.
  torch::serialize::OutputArchive model_archive, optimizer_archive, strategy_archive;
  for (const auto& item : model.named_parameters()) model_archive.write(item.key(), item.value());
  for (const auto& item : model.named_buffers())
    model_archive.write(item.key(), item.value(), true);
  optimizer.save(optimizer_archive);
  for (const auto& [name, tensor] : strategy.state()) strategy_archive.write(name, tensor);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("strategy", strategy_archive);
  archive.write("rng", at::detail::getDefaultCPUGenerator().get_state());

  std::ostringstream payload_stream;
  archive.save_to(payload_stream);
  std::string payload = payload_stream.str();
  std::string header(kMagic, sizeof kMagic);
  std::uint32_t crc = crc32_of(payload);
  std::uint64_t length = payload.size();
  header.append(reinterpret_cast<const char*>(&kVersion), sizeof kVersion);
  header.append(reinterpret_cast<const char*>(&length), sizeof length);
  header.append(reinterpret_cast<const char*>(&crc), sizeof crc);

  const fs::path step_dir = fs::path(dir_) / step_dir_name(position.step);
  fs::create_directories(step_dir);
  write_atomically(step_dir / fmt::format("rank-{:05d}.ckpt", rank_), header, payload);
  comm.barrier().wait();  // every rank's file is complete before `latest` moves
  if (rank_ == 0) {
    write_atomically(fs::path(dir_) / "latest", "", step_dir_name(position.step) + "\n");
    // Keep the newest `keep_` complete checkpoints.
    std::vector<fs::path> steps;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      if (entry.is_directory() && entry.path().filename().string().rfind("step-", 0) == 0) {
        steps.push_back(entry.path());
      }
    }
    std::sort(steps.begin(), steps.end());
    for (std::size_t i = 0; i + keep_ < steps.size(); ++i) fs::remove_all(steps[i]);
  }
  comm.barrier().wait();
}

std::string Checkpointer::latest_path() const {
  std::ifstream in(fs::path(dir_) / "latest");
  std::string name;
  if (!(in >> name)) return "";
  return (fs::path(dir_) / name / fmt::format("rank-{:05d}.ckpt", rank_)).string();
}

std::optional<TrainPosition> Checkpointer::load_latest(torch::nn::Module& model,
                                                       torch::optim::Optimizer& optimizer,
                                                       SyncStrategy& strategy) {
  const std::string path = latest_path();
  if (path.empty()) {
    if (fs::exists(dir_) && !fs::is_empty(dir_)) {
      throw CheckpointError(str_cat("checkpoint directory ", dir_,
                                    " has files but no readable 'latest' pointer; refusing to "
                                    "restart from step 0 over it"));
    }
    return std::nullopt;
  }
  auto fail = [&](const std::string& why) -> CheckpointError {
    return CheckpointError(str_cat("checkpoint ", path, ": ", why));
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) throw fail("cannot open it (missing for this rank?)");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  constexpr std::size_t kHeader =
      sizeof kMagic + sizeof(std::uint32_t) + sizeof(std::uint64_t) + sizeof(std::uint32_t);
  if (bytes.size() < kHeader || bytes.compare(0, sizeof kMagic, kMagic, sizeof kMagic) != 0) {
    throw fail("not a braid checkpoint (bad magic)");
  }
  std::uint32_t version, crc;
  std::uint64_t length;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&length, bytes.data() + 12, 8);
  std::memcpy(&crc, bytes.data() + 20, 4);
  if (version != kVersion) throw fail(str_cat("format version ", version, ", expected ", kVersion));
  if (bytes.size() - kHeader != length) {
    throw fail(str_cat("truncated or padded: ", bytes.size() - kHeader,
                       " payload bytes, header says ", length));
  }
  std::string payload = bytes.substr(kHeader);
  if (crc32_of(payload) != crc) throw fail("corrupt: CRC-32 mismatch");

  try {
    torch::serialize::InputArchive archive;
    std::istringstream payload_stream(payload);
    archive.load_from(payload_stream);
    auto read_int = [&](const char* key) {
      at::Tensor t;
      archive.read(key, t);
      return t.item<std::int64_t>();
    };
    if (read_int("meta/world") != world_) {
      throw fail(
          str_cat("written by a run of ", read_int("meta/world"), " ranks; this run has ", world_));
    }
    torch::serialize::InputArchive model_archive, optimizer_archive, strategy_archive;
    archive.read("model", model_archive);
    auto restore = [&](const std::string& name, at::Tensor& target, bool is_buffer) {
      at::Tensor stored;
      if (!model_archive.try_read(name, stored, is_buffer)) {
        throw fail(str_cat("has no ", is_buffer ? "buffer" : "parameter", " '", name,
                           "' (was it written for another model?)"));
      }
      if (stored.sizes() != target.sizes() || stored.scalar_type() != target.scalar_type()) {
        std::ostringstream message;
        message << "'" << name << "' is " << stored.sizes() << " " << stored.scalar_type()
                << " in the checkpoint but " << target.sizes() << " " << target.scalar_type()
                << " in the model";
        throw fail(message.str());
      }
      torch::NoGradGuard no_grad;
      target.copy_(stored);
    };
    for (auto& item : model.named_parameters()) restore(item.key(), item.value(), false);
    for (auto& item : model.named_buffers()) restore(item.key(), item.value(), true);
    archive.read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
    archive.read("strategy", strategy_archive);
    NamedTensors state = strategy.state();
    for (auto& [name, tensor] : state) strategy_archive.read(name, tensor);
    strategy.load_state(state);
    at::Tensor rng;
    archive.read("rng", rng);
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(rng);
    return TrainPosition{read_int("meta/step"), read_int("meta/epoch"),
                         read_int("meta/step_in_epoch")};
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw fail(str_cat("cannot be restored: ", e.what()));
  }
}

}  // namespace braid
