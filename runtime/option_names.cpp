#include "runtime/option_names.h"

#include <map>
#include <regex>
#include <set>

namespace braid {

std::string data_parallel_option(const std::string& config_key) {
  static const std::map<std::string, std::string> fields = {
      {"sync.strategy", "strategy"},
      {"sync.algorithm", "algorithm"},
      {"sync.bucket_mb", "bucket_mb"},
      {"sync.overlap", "overlap"},
      {"sync.cost_model", "cost_model"},
      {"sync.broadcast_buffers", "broadcast_buffers"},
      {"runtime.timeout_s", "timeout_s"},
      {"runtime.debug_checks", "debug_checks"},
      {"runtime.ranks_per_node", "ranks_per_node"},
      {"runtime.device", "device"},
      {"optimizer.clip_norm", "clip_norm"},
      {"train.nonfinite", "nonfinite"},
      {"coding.scheme", "coding_scheme"},
      {"coding.stragglers", "coding_stragglers"},
      {"coding.burst", "coding_burst"},
      {"coding.window", "coding_window"},
      {"coding.lambda", "coding_lambda"},
      {"coding.mu", "coding_mu"},
      {"compression.error_feedback", "compression.error_feedback"},
      {"compression.eta", "compression.eta"},
      {"compression.momentum_correction", "compression.compression.momentum_correction"},
      {"compression.momentum_masking", "compression.compression.dgc.momentum_masking"},
      {"compression.warmup_epochs", "compression.compression.dgc.warmup_epochs"},
      {"compression.dense_steps", "compression.dense_steps"},
      {"outer.optimizer", "outer.optimizer.name"},
      {"outer.lr", "outer.optimizer.lr"},
      {"outer.momentum", "outer.optimizer.momentum"},
  };
  if (auto it = fields.find(config_key); it != fields.end()) return it->second;
  for (const char* key : {"name", "ratio", "bits", "rank", "scale", "exchange", "estimate_init"}) {
    if (config_key == std::string("compression.") + key) return "compression." + config_key;
  }
  for (const char* key : {"byzantine", "trim", "krum_m", "clip_radius", "clip_iterations",
                          "flag_subspace", "flag_lambda", "flag_iterations"}) {
    if (config_key == std::string("sync.") + key) return std::string("aggregator.") + key;
  }
  if (config_key == "sync.aggregator") return "aggregator.name";
  if (config_key == "inject.attack") return "attack.name";
  if (config_key == "inject.byzantine_ranks") return "attack.ranks";
  for (const char* key : {"steps", "fragments", "fragment_pattern", "delay_steps", "mix", "wire",
                          "staleness_penalty", "clip_threshold", "clip_norm", "reset"}) {
    if (config_key == std::string("outer.") + key) return config_key;
  }
  return "";
}

std::string with_option_names(const std::string& message) {
  static const std::regex key(
      R"(\b(sync|runtime|optimizer|train|coding|compression|outer|inject)\.[a-z_]+)");
  std::set<std::string> seen;
  std::string fields;
  for (auto it = std::sregex_iterator(message.begin(), message.end(), key);
       it != std::sregex_iterator(); ++it) {
    const std::string field = data_parallel_option(it->str());
    if (field.empty() || !seen.insert(field).second) continue;
    fields += (fields.empty() ? "" : ", ") + std::string("DataParallelOptions::") + field;
  }
  return fields.empty() ? message : message + " (" + fields + ")";
}

}  // namespace braid
