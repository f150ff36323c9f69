// Parsing and validation of the run config. One table (for_each_key) lists every key with its
// type and, for names, its valid values; parsing, overrides, unknown-key suggestions and to_yaml
// all walk that table, so a new key is added in one place (and in docs/config.md).
#include "runtime/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <utility>

#include "collectives/allreduce.h"
#include "common/error.h"
#include "compression/bucket_exchange.h"
#include "compression/compressor.h"
#include "compression/compressor_sign.h"
#include "compression/error_feedback.h"
#include "compression/wire_codec.h"
#include "optimizers/gradient_code.h"
#include "optimizers/nonfinite_guard.h"
#include "optimizers/outer_optimizer.h"
#include "optimizers/robust_exchange.h"
#include "optimizers/sequential_code.h"
#include "optimizers/streaming_diloco_strategy.h"
#include "runtime/config_options.h"
#include "runtime/data.h"
#include "runtime/models.h"
#include "runtime/optimizer_factory.h"
#include "runtime/strategy_factory.h"
#include "runtime/token_data.h"
#include "runtime/torchscript_model.h"

namespace braid {
namespace {

using Names = std::vector<std::string>;
using RankPairs = std::vector<std::array<std::int64_t, 2>>;

// coding.scheme: gradient_coding's and sequential_coding's.
const Names& coding_schemes() {
  static const Names names = [] {
    Names all = gradient_code_schemes();
    for (const std::string& s : sequential_code_schemes()) all.push_back(s);
    return all;
  }();
  return names;
}

// Every key in to_yaml order. `visit(section, key, field, names)`; `names` is empty for free
// text, else the valid values, which come from the factory that builds the named thing. C is
// Config or const Config.
template <typename C, typename Visit>
void for_each_key(C& c, Visit&& visit) {
  visit("run", "dir", c.run.dir, {});
  visit("run", "seed", c.run.seed, {});
  visit("model", "name", c.model.name, model_names());
  visit("model", "hidden", c.model.hidden, {});
  visit("model", "d_model", c.model.d_model, {});
  visit("model", "layers", c.model.layers, {});
  visit("model", "heads", c.model.heads, {});
  visit("model", "context", c.model.context, {});
  visit("model", "path", c.model.path, {});
  visit("model", "loss", c.model.loss, model_loss_names());
  visit("data", "name", c.data.name, dataset_names());
  visit("data", "path", c.data.path, {});
  visit("data", "batch_size", c.data.batch_size, {});
  visit("data", "train_limit", c.data.train_limit, {});
  visit("data", "test_limit", c.data.test_limit, {});
  visit("data", "test_fraction", c.data.test_fraction, {});
  visit("data", "token_dtype", c.data.token_dtype, token_dtype_names());
  visit("data", "context", c.data.context, {});
  visit("optimizer", "name", c.optimizer.name, optimizer_names());
  visit("optimizer", "lr", c.optimizer.lr, {});
  visit("optimizer", "momentum", c.optimizer.momentum, {});
  visit("optimizer", "nesterov", c.optimizer.nesterov, {});
  visit("optimizer", "weight_decay", c.optimizer.weight_decay, {});
  visit("optimizer", "schedule", c.optimizer.schedule, schedule_names());
  visit("optimizer", "warmup_steps", c.optimizer.warmup_steps, {});
  visit("optimizer", "min_lr_ratio", c.optimizer.min_lr_ratio, {});
  visit("optimizer", "clip_norm", c.optimizer.clip_norm, {});
  visit("optimizer", "freeze_step", c.optimizer.freeze_step, {});
  // The planned strategies parse, so that validate() can say "not implemented yet" rather
  // than "unknown".
  visit("sync", "strategy", c.sync.strategy, strategy_names(/*planned_too=*/true));
  visit("sync", "algorithm", c.sync.algorithm, allreduce_names());
  visit("sync", "bucket_mb", c.sync.bucket_mb, {});
  visit("sync", "overlap", c.sync.overlap, {});
  visit("sync", "cost_model", c.sync.cost_model, {});
  visit("sync", "broadcast_buffers", c.sync.broadcast_buffers, {});
  visit("sync", "aggregator", c.sync.aggregator, aggregator_names());
  visit("sync", "byzantine", c.sync.byzantine, {});
  visit("sync", "trim", c.sync.trim, {});
  visit("sync", "krum_m", c.sync.krum_m, {});
  visit("sync", "clip_radius", c.sync.clip_radius, {});
  visit("sync", "clip_iterations", c.sync.clip_iterations, {});
  visit("sync", "flag_subspace", c.sync.flag_subspace, {});
  visit("sync", "flag_lambda", c.sync.flag_lambda, {});
  visit("sync", "flag_iterations", c.sync.flag_iterations, {});
  visit("compression", "name", c.compression.name, compression_names());
  visit("compression", "ratio", c.compression.ratio, {});
  visit("compression", "bits", c.compression.bits, {});
  visit("compression", "error_feedback", c.compression.error_feedback, error_feedback_names());
  visit("compression", "eta", c.compression.eta, {});
  visit("compression", "estimate_init", c.compression.estimate_init, estimate_init_names());
  visit("compression", "rank", c.compression.rank, {});
  visit("compression", "scale", c.compression.scale, sign_scale_names());
  visit("compression", "exchange", c.compression.exchange, exchange_path_names());
  visit("compression", "momentum_correction", c.compression.momentum_correction, {});
  visit("compression", "momentum_masking", c.compression.momentum_masking, {});
  visit("compression", "warmup_epochs", c.compression.warmup_epochs, {});
  visit("compression", "dense_steps", c.compression.dense_steps, {});
  visit("outer", "steps", c.outer.steps, {});
  visit("outer", "optimizer", c.outer.optimizer, outer_optimizer_names());
  visit("outer", "lr", c.outer.lr, {});
  visit("outer", "momentum", c.outer.momentum, {});
  visit("outer", "fragments", c.outer.fragments, {});
  visit("outer", "fragment_pattern", c.outer.fragment_pattern, fragment_pattern_names());
  visit("outer", "delay_steps", c.outer.delay_steps, {});
  visit("outer", "mix", c.outer.mix, {});
  visit("outer", "wire", c.outer.wire, wire_names());
  visit("outer", "staleness_penalty", c.outer.staleness_penalty, {});
  visit("outer", "clip_threshold", c.outer.clip_threshold, {});
  visit("outer", "clip_norm", c.outer.clip_norm, {});
  visit("outer", "reset", c.outer.reset, outer_reset_names());
  visit("coding", "scheme", c.coding.scheme, coding_schemes());
  visit("coding", "stragglers", c.coding.stragglers, {});
  visit("coding", "burst", c.coding.burst, {});
  visit("coding", "window", c.coding.window, {});
  visit("coding", "lambda", c.coding.lambda, {});
  visit("coding", "mu", c.coding.mu, {});
  visit("inject", "slow_ranks", c.inject.slow_ranks, {});
  visit("inject", "slowdown", c.inject.slowdown, {});
  visit("inject", "delay_ms", c.inject.delay_ms, {});
  visit("inject", "probability", c.inject.probability, {});
  visit("inject", "seed", c.inject.seed, {});
  visit("inject", "slow_links", c.inject.slow_links, {});
  visit("inject", "link_delay_ms", c.inject.link_delay_ms, {});
  visit("inject", "link_slowdown", c.inject.link_slowdown, {});
  visit("inject", "crash_rank", c.inject.crash_rank, {});
  visit("inject", "crash_after_s", c.inject.crash_after_s, {});
  visit("inject", "trace", c.inject.trace, {});
  visit("inject", "byzantine_ranks", c.inject.byzantine_ranks, {});
  visit("inject", "attack", c.inject.attack, attack_names());
  visit("inject", "alie_z", c.inject.alie_z, {});
  visit("inject", "ipm_epsilon", c.inject.ipm_epsilon, {});
  visit("train", "epochs", c.train.epochs, {});
  visit("train", "max_steps", c.train.max_steps, {});
  visit("train", "eval_every", c.train.eval_every, {});
  visit("train", "log_every", c.train.log_every, {});
  visit("train", "checkpoint_every", c.train.checkpoint_every, {});
  visit("train", "resume", c.train.resume, {"never", "auto"});
  visit("train", "init_from", c.train.init_from, {});
  visit("train", "eval_batch_size", c.train.eval_batch_size, {});
  visit("train", "accumulate_steps", c.train.accumulate_steps, {});
  visit("train", "nonfinite", c.train.nonfinite, nonfinite_policy_names());
  visit("runtime", "threads", c.runtime.threads, {});
  visit("runtime", "timeout_s", c.runtime.timeout_s, {});
  visit("runtime", "debug_checks", c.runtime.debug_checks, {});
  visit("runtime", "log_level", c.runtime.log_level, {"trace", "debug", "info", "warn", "error"});
  visit("runtime", "trace", c.runtime.trace, {});
  visit("runtime", "progress", c.runtime.progress, {"auto", "bar", "lines"});
  visit("runtime", "device", c.runtime.device, {"auto", "cpu", "cuda"});
  visit("runtime", "ranks_per_node", c.runtime.ranks_per_node, {});
  visit("runtime", "flight_recorder", c.runtime.flight_recorder, {});
  visit("runtime", "straggler_factor", c.runtime.straggler_factor, {});
  visit("runtime", "link_probe_every", c.runtime.link_probe_every, {});
}

// Sections for the methods still to come: known, so that a key there gets a clear message
// rather than "unknown section", and so that later methods add keys without a new section.
const std::vector<std::pair<const char*, const char*>>& reserved_sections() {
  static const std::vector<std::pair<const char*, const char*>> sections = {};
  return sections;
}

const char* reserved_for(const std::string& section) {
  for (const auto& [name, what] : reserved_sections()) {
    if (section == name) return what;
  }
  return nullptr;
}

struct KeyName {
  std::string section;
  std::string key;
};

const std::vector<KeyName>& all_keys() {
  static const std::vector<KeyName> keys = [] {
    std::vector<KeyName> out;
    const Config defaults;
    for_each_key(defaults, [&](const char* s, const char* k, const auto&, Names) {
      out.push_back({s, k});
    });
    return out;
  }();
  return keys;
}

bool is_section(const std::string& name) {
  if (reserved_for(name)) return true;
  const auto& keys = all_keys();
  return std::any_of(keys.begin(), keys.end(), [&](const KeyName& k) { return k.section == name; });
}

// Edits (insert, delete, substitute, swap two neighbours) that turn a into b: a swap counts
// once, since "modle" is one slip away from "model".
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// A suggestion is worth making only when it is a slip away: at most a third of the name's
// letters (at least one) differ. Farther names would only mislead.
bool close_enough(std::size_t distance, const std::string& typed) {
  return distance <= std::max<std::size_t>(1, typed.size() / 3);
}

// Key names are compared without their section, so that a key put in the wrong section
// (model.batch_size) still finds its home; ties go to the section the user wrote. A top-level
// name may also be a misspelt section.
// Returns "" when nothing is close enough.
std::string closest_key(const std::string& section, const std::string& key, bool sections_too) {
  std::pair<std::size_t, bool> best{std::numeric_limits<std::size_t>::max(), true};
  std::string best_name;
  auto consider = [&](const std::string& name, const std::string& compared, bool other_section) {
    std::pair<std::size_t, bool> score{edit_distance(key, compared), other_section};
    if (score < best) {
      best = score;
      best_name = name;
    }
  };
  for (const KeyName& k : all_keys()) {
    if (sections_too) consider(k.section, k.section, false);
    consider(k.section + "." + k.key, k.key, k.section != section);
  }
  return close_enough(best.first, key) ? best_name : "";
}

// What to offer when no name is close: the keys of the section the user wrote, or the
// sections.
std::string valid_names(const std::string& section) {
  std::vector<std::string> names;
  for (const KeyName& k : all_keys()) {
    if (!section.empty() && k.section != section) continue;
    const std::string& name = section.empty() ? k.section : k.key;
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return section.empty() ? "valid sections: " + join(names)
                         : str_cat("valid keys in ", section, ": ", join(names));
}

ConfigError unknown_key(const std::string& where, const std::string& section,
                        const std::string& key, bool sections_too) {
  std::string name = section.empty() ? key : section + "." + key;
  if (const char* what = reserved_for(section)) {
    return ConfigError(str_cat(where, "'", name, "': the '", section, "' section configures ", what,
                               ", which this version of braid does not implement yet"));
  }
  const std::string closest = closest_key(section, key, sections_too);
  if (closest.empty()) {
    const bool known_section = !section.empty() && is_section(section);
    return ConfigError(str_cat(where, "unknown key '", name, "' (",
                               valid_names(known_section ? section : ""), ")"));
  }
  return ConfigError(str_cat(where, "unknown key '", name, "' (did you mean '", closest, "'?)"));
}

std::string describe(const YAML::Node& node) {
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a sequence";
  if (node.IsNull()) return "null";
  return "'" + node.Scalar() + "'";
}

template <typename T>
bool parse_number(std::string_view text, T& out) {
  if (!text.empty() && text[0] == '+') text.remove_prefix(1);
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return false;
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) return false;
  }
  out = value;
  return true;
}

// The one place a YAML value becomes a typed field, so every key gets the same messages.
// Null is accepted for free text (`path:` means unset, as the default).
template <typename T>
void read_value(const YAML::Node& node, const std::string& where, const std::string& key,
                Names names, T& out) {
  std::string expected;
  if constexpr (std::is_same_v<T, RankPairs>) {
    expected = "a list of pairs of ranks, e.g. [[1, 2]]";
  } else if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
    expected = "a list of integers, e.g. [1, 3]";
  } else if constexpr (std::is_same_v<T, bool>) {
    expected = "true or false";
  } else if constexpr (std::is_same_v<T, std::uint64_t>) {
    expected = "a non-negative integer";
  } else if constexpr (std::is_integral_v<T>) {
    expected = "an integer";
  } else if constexpr (std::is_floating_point_v<T>) {
    expected = "a number";
  } else if (names.empty()) {
    expected = "a string";
  } else {
    const char* separator = "one of ";
    for (const std::string& name : names) {
      expected += str_cat(separator, name);
      separator = ", ";
    }
  }
  auto fail = [&] {
    return ConfigError(str_cat(where, key, ": expected ", expected, ", got ", describe(node)));
  };

  if constexpr (std::is_same_v<T, std::string>) {
    if (node.IsNull() && names.empty()) {
      out.clear();
      return;
    }
  }
  if constexpr (std::is_same_v<T, RankPairs>) {
    if (node.IsNull()) {
      out.clear();
      return;
    }
    if (!node.IsSequence()) throw fail();
    T pairs;
    for (const YAML::Node& item : node) {
      std::array<std::int64_t, 2> pair{};
      bool ok = item.IsSequence() && item.size() == 2;
      for (std::size_t i = 0; ok && i < 2; ++i) {
        ok = item[i].IsScalar() && parse_number(item[i].Scalar(), pair[i]);
      }
      if (!ok) {
        throw ConfigError(str_cat(where, key, ": expected ", expected, ", but element ",
                                  pairs.size() + 1, " is ", describe(item)));
      }
      pairs.push_back(pair);
    }
    out = pairs;
    return;
  }
  if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
    if (node.IsNull()) {
      out.clear();
      return;
    }
    if (!node.IsSequence()) throw fail();
    T values;
    for (const YAML::Node& item : node) {
      std::int64_t value = 0;
      if (!item.IsScalar() || !parse_number(item.Scalar(), value)) {
        throw ConfigError(str_cat(where, key, ": expected ", expected, ", but element ",
                                  values.size() + 1, " is ", describe(item)));
      }
      values.push_back(value);
    }
    out = values;
    return;
  }
  if (!node.IsScalar()) throw fail();
  const std::string& text = node.Scalar();
  if constexpr (std::is_same_v<T, bool>) {
    if (text != "true" && text != "false") throw fail();
    out = text == "true";
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!names.empty() && std::find(names.begin(), names.end(), text) == names.end()) {
      throw fail();
    }
    out = text;
  } else if constexpr (std::is_arithmetic_v<T>) {
    if (!parse_number(text, out)) throw fail();
  }
}

// Returns false when section.key is not a key.
bool set_key(Config& config, const std::string& section, const std::string& key,
             const YAML::Node& value, const std::string& where) {
  bool found = false;
  for_each_key(config, [&](const char* s, const char* k, auto& field, Names names) {
    if (found || section != s || key != k) return;
    found = true;
    read_value(value, where, section + "." + key, names, field);
  });
  return found;
}

std::string where_in_file(const std::string& source, const YAML::Mark& mark) {
  if (mark.is_null()) return source + ": ";
  return str_cat(source, ":", mark.line + 1, ":", mark.column + 1, ": ");
}

// yaml-cpp calls a tab in the indentation an "illegal map value" or the like: name the cause.
std::string tab_in_indentation(const std::string& text) {
  std::istringstream lines(text);
  int number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    const std::size_t indent = line.find_first_not_of(" \t");
    if (line.substr(0, indent).find('\t') != std::string::npos) {
      return str_cat(" (line ", number, " is indented with a tab: YAML indents with spaces only)");
    }
  }
  return "";
}

// The keys a config file or an override set (section.key), whatever their value.
using GivenKeys = std::set<std::string>;

void apply_yaml(Config& config, const std::string& text, const std::string& source,
                GivenKeys& given) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(str_cat(where_in_file(source, e.mark), "malformed YAML: ", e.msg,
                              tab_in_indentation(text)));
  }
  if (root.IsNull()) return;  // an empty file: all defaults
  if (!root.IsMap()) {
    throw ConfigError(
        str_cat(source, ": the top level must be a map of sections, got ", describe(root)));
  }
  // yaml-cpp keeps duplicate keys; the second would silently win, which hides typos.
  std::set<std::string> seen;
  for (const auto& entry : root) {
    const std::string section = entry.first.Scalar();
    const std::string where = where_in_file(source, entry.first.Mark());
    if (!is_section(section)) throw unknown_key(where, "", section, true);
    if (!seen.insert(section).second) {
      throw ConfigError(str_cat(where, "duplicate key '", section, "'"));
    }
    const YAML::Node& body = entry.second;
    if (body.IsNull()) continue;  // every key of the section commented out
    if (!body.IsMap()) {
      throw ConfigError(str_cat(where, section, ": expected a map of keys, got ", describe(body)));
    }
    for (const auto& item : body) {
      const std::string key = item.first.Scalar();
      const std::string key_where = where_in_file(source, item.first.Mark());
      if (!seen.insert(section + "." + key).second) {
        throw ConfigError(str_cat(key_where, "duplicate key '", section, ".", key, "'"));
      }
      if (!set_key(config, section, key, item.second, key_where)) {
        throw unknown_key(key_where, section, key, false);
      }
      given.insert(section + "." + key);
    }
  }
}

void apply_override(Config& config, const std::string& override_text, const std::string& source,
                    GivenKeys& given) {
  const std::string where = str_cat(source, ": override '", override_text, "': ");
  const std::size_t eq = override_text.find('=');
  std::string path = override_text.substr(0, eq);
  path.erase(0, path.find_first_not_of(" \t"));
  path.erase(path.find_last_not_of(" \t") + 1);
  if (eq == std::string::npos || path.empty()) {
    throw ConfigError(str_cat(where, "expected section.key=value"));
  }
  const std::size_t dot = path.find('.');
  const std::string section = dot == std::string::npos ? "" : path.substr(0, dot);
  const std::string key = dot == std::string::npos ? path : path.substr(dot + 1);

  YAML::Node value;
  try {
    value = YAML::Load(override_text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError(str_cat(where, path, ": malformed value: ", e.msg));
  }
  if (!set_key(config, section, key, value, where)) throw unknown_key(where, section, key, false);
  given.insert(section + "." + key);
}

// Sign and top-k with error feedback under heavy-ball momentum applied after the exchange
// diverge or lose points (bench/compression.sh: sign + EF at chance with momentum 0.9, top-k 1%
// + EF 3.4 points below dense); with the momentum accumulated before compressing, as DGC does,
// both train. Top-k with ef21 or econtrol ends at chance on the shipped cnn config without it
// and about 3.5 points below dense with it (their estimate tracks the smoother velocity). So
// momentum SGD with them corrects the momentum unless the file says otherwise. Sign with ef21
// or econtrol ends at chance either way (a warning says so).
bool corrects_momentum_by_default(const Config& c) {
  const std::string& feedback = c.compression.error_feedback;
  const bool helps = (c.compression.name == "sign" && feedback == "ef") ||
                     (c.compression.name == "topk" &&
                      (feedback == "ef" || feedback == "ef21" || feedback == "econtrol"));
  return helps && c.sync.strategy == "allreduce" && c.optimizer.name == "sgd" &&
         c.optimizer.momentum > 0 && !c.optimizer.nesterov;
}

void resolve_defaults(Config& c, const GivenKeys& given) {
  if (c.data.path.empty()) {
    c.data.path =
        c.data.name == "text" ? "/usr/share/games/fortunes" : "/usr/share/datasets/fashion-mnist";
  }
  // co2's outer update is one round stale: DiLoCo's Nesterov 0.7/0.9 overshoots with it (the
  // loss rose in bench/slowlink_local.sh), so co2 defaults to its reference code's outer step
  // (fairseq-CO2's example for few GPUs: SGD, lr 1, momentum 0.2). Values given are kept.
  if (c.sync.strategy == "co2") {
    if (!given.count("outer.optimizer")) c.outer.optimizer = "sgd";
    if (!given.count("outer.lr")) c.outer.lr = 1.0;
    if (!given.count("outer.momentum")) c.outer.momentum = 0.2;
  }
  // Streaming DiLoCo's paper tuned its outer Nesterov lr at small scale to 0.4 and kept it at
  // every scale (DiLoCo's paper: 0.7).
  if (c.sync.strategy == "streaming_diloco" && !given.count("outer.lr")) c.outer.lr = 0.4;
  // DGC's paper keeps 0.1% of each layer's gradient (top-k's 1% default is the common choice
  // for plain top-k with error feedback).
  if (c.compression.name == "dgc" && !given.count("compression.ratio")) {
    c.compression.ratio = 0.001;
  }
  if (!given.count("compression.momentum_correction"))
    c.compression.momentum_correction = corrects_momentum_by_default(c);
}

void validate(const Config& c, const std::string& source) {
  auto require = [&](bool ok, const char* key, const char* rule, const auto& value) {
    if (!ok) throw ConfigError(str_cat(source, ": ", key, ": must be ", rule, ", got ", value));
  };
  require(!c.run.dir.empty(), "run.dir", "non-empty", "''");

  require(c.model.hidden >= 1, "model.hidden", ">= 1", c.model.hidden);
  require(c.model.d_model >= 1, "model.d_model", ">= 1", c.model.d_model);
  require(c.model.layers >= 1, "model.layers", ">= 1", c.model.layers);
  require(c.model.heads >= 1, "model.heads", ">= 1", c.model.heads);
  require(c.model.d_model % c.model.heads == 0, "model.d_model", "divisible by model.heads",
          str_cat(c.model.d_model, " with heads ", c.model.heads));
  require(c.model.context >= 2, "model.context", ">= 2", c.model.context);

  const bool scripted = c.model.name == "torchscript";
  require(scripted == !c.model.path.empty(), "model.path",
          scripted ? "the file torch.jit.save wrote, for model.name torchscript"
                   : "empty unless model.name is torchscript",
          str_cat("'", c.model.path, "'"));
  const char* wanted_data = c.model.name == "char_transformer" ? "text" : "fashion_mnist";
  if (!scripted && c.data.name != wanted_data) {
    throw ConfigError(str_cat(source, ": model.name '", c.model.name, "' needs data.name '",
                              wanted_data, "', got '", c.data.name, "'"));
  }
  require(c.data.batch_size >= 1, "data.batch_size", ">= 1", c.data.batch_size);
  require(c.data.context >= 0, "data.context", ">= 0 (0: model.context)", c.data.context);
  require(c.data.train_limit >= 0, "data.train_limit", ">= 0", c.data.train_limit);
  require(c.data.test_limit >= 0, "data.test_limit", ">= 0", c.data.test_limit);
  require(c.data.test_fraction > 0 && c.data.test_fraction < 1, "data.test_fraction", "in (0, 1)",
          c.data.test_fraction);

  require(c.optimizer.lr > 0, "optimizer.lr", "> 0", c.optimizer.lr);
  require(c.optimizer.momentum >= 0 && c.optimizer.momentum < 1, "optimizer.momentum", "in [0, 1)",
          c.optimizer.momentum);
  require(c.optimizer.weight_decay >= 0, "optimizer.weight_decay", ">= 0",
          c.optimizer.weight_decay);
  require(c.optimizer.warmup_steps >= 0, "optimizer.warmup_steps", ">= 0",
          c.optimizer.warmup_steps);
  require(c.optimizer.min_lr_ratio >= 0 && c.optimizer.min_lr_ratio <= 1, "optimizer.min_lr_ratio",
          "in [0, 1]", c.optimizer.min_lr_ratio);
  require(c.optimizer.clip_norm >= 0, "optimizer.clip_norm", ">= 0 (0: no clipping)",
          c.optimizer.clip_norm);
  require(c.optimizer.freeze_step >= 0, "optimizer.freeze_step", ">= 0", c.optimizer.freeze_step);
  if (c.optimizer.nesterov) {
    require(c.optimizer.name == "sgd", "optimizer.nesterov", "false unless optimizer.name is sgd",
            "true");
    require(c.optimizer.momentum > 0, "optimizer.nesterov", "false when optimizer.momentum is 0",
            "true");
    require(!c.compression.momentum_correction, "optimizer.nesterov",
            "false with compression.momentum_correction (only dgc has a Nesterov correction)",
            "true");
  }

  const auto& implemented = strategy_names(/*planned_too=*/false);
  if (std::find(implemented.begin(), implemented.end(), c.sync.strategy) == implemented.end()) {
    throw ConfigError(str_cat(source, ": sync.strategy '", c.sync.strategy,
                              "' is not implemented yet (implemented: ", join(implemented), ")"));
  }
  require(c.sync.bucket_mb > 0, "sync.bucket_mb", "> 0", c.sync.bucket_mb);
  require(c.compression.ratio > 0 && c.compression.ratio <= 1, "compression.ratio", "in (0, 1]",
          c.compression.ratio);
  require(c.compression.bits >= 1 && c.compression.bits <= 8, "compression.bits", "in 1..8",
          c.compression.bits);
  require(c.compression.eta >= 0, "compression.eta", ">= 0", c.compression.eta);
  require(c.compression.rank >= 1 && c.compression.rank <= 1024, "compression.rank", "in 1..1024",
          c.compression.rank);
  require(c.compression.warmup_epochs >= 0, "compression.warmup_epochs", ">= 0",
          c.compression.warmup_epochs);
  require(c.compression.dense_steps >= 0, "compression.dense_steps", ">= 0",
          c.compression.dense_steps);
  if (c.compression.momentum_correction || c.compression.name == "dgc") {
    // The momentum moves from the optimizer into the gradient exchange (momentum_correction.h).
    require(c.optimizer.name == "sgd", "optimizer.name",
            c.compression.name == "dgc" ? "sgd with compression.name dgc"
                                        : "sgd with compression.momentum_correction",
            c.optimizer.name);
  }
  // 1-bit Adam exchanges for itself every step; only the allreduce strategy can host it.
  require(c.optimizer.name != "onebit_adam" || c.sync.strategy == "allreduce", "sync.strategy",
          "allreduce with optimizer.name onebit_adam (it exchanges for itself every step)",
          c.sync.strategy);
  require(c.optimizer.name != "onebit_adam" || c.sync.aggregator == "mean", "sync.aggregator",
          "mean with optimizer.name onebit_adam (it exchanges for itself every step)",
          c.sync.aggregator);
  require(c.optimizer.name != "onebit_adam" || c.inject.attack == "none", "inject.attack",
          "none with optimizer.name onebit_adam (it exchanges for itself every step)",
          c.inject.attack);
  // Combinations of strategy, compression and exchange: the one check that DataParallel (the
  // embedding API) runs too, on the options this config resolves to.
  try {
    check_strategy_options(data_parallel_options(c));
  } catch (const ConfigError& e) {
    throw ConfigError(str_cat(source, ": ", e.what()));
  }

  require(c.outer.steps >= 1, "outer.steps", ">= 1", c.outer.steps);
  require(c.outer.lr > 0, "outer.lr", "> 0", c.outer.lr);
  require(c.outer.momentum >= 0 && c.outer.momentum < 1, "outer.momentum", "in [0, 1)",
          c.outer.momentum);
  require(c.outer.fragments >= 1, "outer.fragments", ">= 1", c.outer.fragments);
  require(c.outer.delay_steps >= 0, "outer.delay_steps", ">= 0", c.outer.delay_steps);
  require(c.outer.mix >= 0 && c.outer.mix <= 1, "outer.mix", "in [0, 1]", c.outer.mix);
  if (c.sync.strategy == "streaming_diloco") {
    require(c.outer.fragments <= c.outer.steps, "outer.fragments",
            "<= outer.steps (each fragment syncs at its own offset)", c.outer.fragments);
    require(c.outer.delay_steps < c.outer.steps, "outer.delay_steps", "< outer.steps",
            c.outer.delay_steps);
    if (c.compression.name != "none" || c.compression.error_feedback != "none") {
      require(c.outer.wire == "float32", "outer.wire",
              "float32 with compression (the compressor encodes the pseudo-gradients)",
              c.outer.wire);
    }
  }
  require(c.outer.staleness_penalty >= 0, "outer.staleness_penalty", ">= 0 (0: no penalty)",
          c.outer.staleness_penalty);
  require(c.outer.clip_norm >= 0, "outer.clip_norm", ">= 0 (0: no clipping)", c.outer.clip_norm);
  require(c.outer.clip_threshold >= 0, "outer.clip_threshold", ">= 0 (0: no clipping)",
          c.outer.clip_threshold);

  require(c.coding.stragglers >= 0, "coding.stragglers", ">= 0", c.coding.stragglers);
  if (c.sync.strategy == "gradient_coding" || c.sync.strategy == "sequential_coding") {
    require(c.compression.name == "none" && c.compression.error_feedback == "none",
            "compression.name", "none with gradient_coding and sequential_coding",
            c.compression.name);
  }
  const std::vector<std::string>& sequential = sequential_code_schemes();
  const bool is_sequential =
      std::find(sequential.begin(), sequential.end(), c.coding.scheme) != sequential.end();
  if (c.sync.strategy == "sequential_coding") {
    require(is_sequential, "coding.scheme", "sr_sgc or m_sgc with sync.strategy sequential_coding",
            c.coding.scheme);
  } else if (c.sync.strategy == "gradient_coding") {
    require(!is_sequential, "coding.scheme",
            "fractional or cyclic with sync.strategy gradient_coding (sr_sgc and m_sgc are "
            "sync.strategy sequential_coding's)",
            c.coding.scheme);
  }
  require(c.coding.burst >= 1, "coding.burst", ">= 1", c.coding.burst);
  require(c.coding.window > c.coding.burst, "coding.window", "> coding.burst", c.coding.window);
  require(c.coding.lambda >= 1, "coding.lambda", ">= 1", c.coding.lambda);
  require(c.coding.mu >= 0, "coding.mu", ">= 0", c.coding.mu);
  for (std::int64_t r : c.inject.slow_ranks) {
    require(r >= 0, "inject.slow_ranks", "a list of ranks >= 0", r);
  }
  require(c.inject.slowdown >= 1, "inject.slowdown", ">= 1 (1: no slowdown)", c.inject.slowdown);
  require(c.inject.delay_ms >= 0, "inject.delay_ms", ">= 0", c.inject.delay_ms);
  require(c.inject.probability >= 0 && c.inject.probability <= 1, "inject.probability", "in [0, 1]",
          c.inject.probability);
  for (const auto& [a, b] : c.inject.slow_links) {
    require(a >= 0 && b >= 0 && a != b, "inject.slow_links", "pairs of two different ranks >= 0",
            str_cat("[", a, ", ", b, "]"));
  }
  require(c.inject.link_delay_ms >= 0, "inject.link_delay_ms", ">= 0", c.inject.link_delay_ms);
  require(c.inject.link_slowdown >= 1, "inject.link_slowdown", ">= 1 (1: no slowdown)",
          c.inject.link_slowdown);
  require(c.inject.crash_rank >= -1, "inject.crash_rank", ">= -1 (-1: none)", c.inject.crash_rank);
  require(c.inject.crash_after_s >= 0, "inject.crash_after_s", ">= 0", c.inject.crash_after_s);

  require(c.train.max_steps >= 0, "train.max_steps", ">= 0", c.train.max_steps);
  if (c.train.max_steps == 0) {
    require(c.train.epochs >= 1, "train.epochs", ">= 1 when train.max_steps is 0", c.train.epochs);
  } else {
    require(c.train.epochs >= 0, "train.epochs", ">= 0", c.train.epochs);
  }
  require(c.train.eval_every >= 0, "train.eval_every", ">= 0", c.train.eval_every);
  require(c.train.log_every >= 0, "train.log_every", ">= 0", c.train.log_every);
  require(c.train.checkpoint_every >= 0, "train.checkpoint_every", ">= 0",
          c.train.checkpoint_every);
  require(c.train.eval_batch_size >= 1, "train.eval_batch_size", ">= 1", c.train.eval_batch_size);
  require(c.train.accumulate_steps >= 1, "train.accumulate_steps", ">= 1",
          c.train.accumulate_steps);

  require(c.runtime.threads >= 1, "runtime.threads", ">= 1", c.runtime.threads);
  require(c.runtime.timeout_s > 0, "runtime.timeout_s", "> 0", c.runtime.timeout_s);
  require(c.runtime.ranks_per_node >= 0, "runtime.ranks_per_node", ">= 0",
          c.runtime.ranks_per_node);
  require(c.runtime.flight_recorder >= 0 && c.runtime.flight_recorder <= 1000000,
          "runtime.flight_recorder", "in [0, 1000000] (0: off)", c.runtime.flight_recorder);
  require(c.runtime.link_probe_every >= 0, "runtime.link_probe_every", ">= 0 (0: off)",
          c.runtime.link_probe_every);
  require(c.runtime.straggler_factor > 1, "runtime.straggler_factor", "> 1",
          c.runtime.straggler_factor);
}

// Double-quoted so that strings like "yes", "123" or "" read back as the same string.
std::string yaml_value(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", ch);
      out += escaped;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out + "\"";
}

std::string yaml_value(bool b) { return b ? "true" : "false"; }

// Shortest text that reads back to the same double; ".0" keeps whole numbers looking like
// numbers with a fraction to a reader.
std::string yaml_value(double d) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, d);
  std::string out(buffer, end);
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

template <typename T, typename = std::enable_if_t<std::is_integral_v<T>>>
std::string yaml_value(T i) {
  return std::to_string(i);
}

// Pairs as a flow sequence: [[1, 2], [0, 3]].
std::string yaml_value(const RankPairs& pairs) {
  std::string out = "[";
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    out += str_cat(i ? ", " : "", "[", pairs[i][0], ", ", pairs[i][1], "]");
  }
  return out + "]";
}

// A flow sequence, as written on the command line: [1, 3].
std::string yaml_value(const std::vector<std::int64_t>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(values[i]);
  }
  return out + "]";
}

}  // namespace

std::string Config::to_yaml() const {
  std::ostringstream out;
  std::string section;
  for_each_key(*this, [&](const char* s, const char* k, const auto& field, Names) {
    if (section != s) {
      section = s;
      out << section << ":\n";
    }
    out << "  " << k << ": " << yaml_value(field) << "\n";
  });
  return out.str();
}

// The cost model file's contents count too: ranks reading different files must not start.
std::uint64_t Config::hash() const {
  std::string text = to_yaml();
  if (!sync.cost_model.empty()) {
    std::ifstream in(sync.cost_model, std::ios::binary);
    std::ostringstream contents;
    contents << in.rdbuf();
    text += "\n# cost model\n" + (in ? contents.str() : std::string("<unreadable>"));
  }
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                    const std::string& source) {
  const std::string name = source.empty() ? "<config>" : source;
  Config config;
  GivenKeys given;
  apply_yaml(config, yaml_text, name, given);
  for (const std::string& override_text : overrides) {
    apply_override(config, override_text, name, given);
  }
  resolve_defaults(config, given);
  validate(config, name);
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError(str_cat(path, ": cannot read config file: it is a directory"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(str_cat(path, ": cannot read config file: ", std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), overrides, path);
}

}  // namespace braid
