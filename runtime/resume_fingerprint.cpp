#include "runtime/resume_fingerprint.h"

#include <fmt/core.h>

#include <map>

namespace braid {

namespace {

std::string quoted(const std::string& s) { return fmt::format("\"{}\"", s); }

}  // namespace

ResumeFingerprint resume_fingerprint(const Config& c) {
  ResumeFingerprint f = {
      {"run.seed", std::to_string(c.run.seed)},
      {"model.name", quoted(c.model.name)},
      {"model.hidden", std::to_string(c.model.hidden)},
      {"model.d_model", std::to_string(c.model.d_model)},
      {"model.layers", std::to_string(c.model.layers)},
      {"model.heads", std::to_string(c.model.heads)},
      {"model.context", std::to_string(c.model.context)},
      {"data.name", quoted(c.data.name)},
      {"data.path", quoted(c.data.path)},
      {"data.batch_size", std::to_string(c.data.batch_size)},
      {"data.train_limit", std::to_string(c.data.train_limit)},
      {"train.accumulate_steps", std::to_string(c.train.accumulate_steps)},
      {"compression.name", quoted(c.compression.name)},
      {"compression.error_feedback", quoted(c.compression.error_feedback)},
      {"optimizer.name", quoted(c.optimizer.name)},
      {"optimizer.schedule", quoted(c.optimizer.schedule)},
      {"optimizer.warmup_steps", std::to_string(c.optimizer.warmup_steps)},
  };
  // Recorded only where they matter, so checkpoints of runs that never set them still match.
  if (c.compression.exchange != "auto") {
    f.emplace_back("compression.exchange", quoted(c.compression.exchange));
  }
  if (c.optimizer.name == "onebit_adam") {
    f.emplace_back("optimizer.freeze_step", std::to_string(c.optimizer.freeze_step));
  }
  if (c.compression.momentum_correction) f.emplace_back("compression.momentum_correction", "true");
  if (c.compression.dense_steps > 0) {
    f.emplace_back("compression.dense_steps", std::to_string(c.compression.dense_steps));
  }
  if (c.compression.name == "powersgd") {
    f.emplace_back("compression.rank", std::to_string(c.compression.rank));
  }
  // The local-update strategies: their schedule (H) and outer optimizer shape the trajectory.
  if (c.sync.strategy != "allreduce") {
    f.emplace_back("sync.strategy", quoted(c.sync.strategy));
    f.emplace_back("outer.steps", std::to_string(c.outer.steps));
  }
  if (c.sync.strategy == "diloco" || c.sync.strategy == "streaming_diloco" ||
      c.sync.strategy == "co2") {
    f.emplace_back("outer.optimizer", quoted(c.outer.optimizer));
    f.emplace_back("outer.lr", fmt::format("{}", c.outer.lr));
    f.emplace_back("outer.momentum", fmt::format("{}", c.outer.momentum));
  }
  if (c.sync.strategy == "streaming_diloco") {
    f.emplace_back("outer.fragments", std::to_string(c.outer.fragments));
    f.emplace_back("outer.fragment_pattern", quoted(c.outer.fragment_pattern));
    f.emplace_back("outer.delay_steps", std::to_string(c.outer.delay_steps));
    f.emplace_back("outer.mix", fmt::format("{}", c.outer.mix));
    f.emplace_back("outer.wire", quoted(c.outer.wire));
  }
  if (c.sync.strategy == "co2") {
    f.emplace_back("outer.staleness_penalty", fmt::format("{}", c.outer.staleness_penalty));
    f.emplace_back("outer.clip_norm", fmt::format("{}", c.outer.clip_norm));
    f.emplace_back("outer.clip_threshold", fmt::format("{}", c.outer.clip_threshold));
    f.emplace_back("outer.reset", quoted(c.outer.reset));
  }
  // A decaying schedule spreads over the total number of steps, so its length is part of the
  // run; a constant one is not, and a finished run may be extended.
  if (c.optimizer.schedule != "constant") {
    f.emplace_back("train.epochs", std::to_string(c.train.epochs));
    f.emplace_back("train.max_steps", std::to_string(c.train.max_steps));
  }
  return f;
}

std::string fingerprint_changes(const ResumeFingerprint& stored, const ResumeFingerprint& current,
                                const std::string& source) {
  const std::map<std::string, std::string> before(stored.begin(), stored.end());
  std::string changes;
  for (const auto& [key, value] : current) {
    auto it = before.find(key);
    const std::string was = it == before.end() ? "not recorded" : it->second;
    if (was == value) continue;
    if (!changes.empty()) changes += "; ";
    changes +=
        fmt::format("{} was {} in checkpoint {}, the config says {}", key, was, source, value);
  }
  return changes;
}

}  // namespace braid
