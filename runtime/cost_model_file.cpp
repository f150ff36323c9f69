#include "runtime/cost_model_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>

#include "common/error.h"

namespace braid {

CostModel load_cost_model(const std::string& path) {
  CostModel model;
  try {
    YAML::Node root = YAML::LoadFile(path);
    model.alpha_s = root["alpha_s"].as<double>();
    model.beta_s_per_byte = root["beta_s_per_byte"].as<double>();
    model.gamma_s_per_byte = root["gamma_s_per_byte"].as<double>();
    if (YAML::Node measured = root["measured"]) {
      model.measured_ranks = measured["ranks"].as<int>();
      model.measured_bytes = measured["bytes"].as<std::vector<std::size_t>>();
      model.measured_best = measured["best"].as<std::vector<std::string>>();
    }
  } catch (const YAML::Exception& e) {
    throw ConfigError(str_cat("cost model file '", path, "': ", e.what(),
                              " (expected keys alpha_s, beta_s_per_byte, gamma_s_per_byte)"));
  }
  if (!(model.alpha_s >= 0 && model.beta_s_per_byte > 0 && model.gamma_s_per_byte >= 0)) {
    throw ConfigError(str_cat("cost model file '", path, "': values must be non-negative"));
  }
  if (model.measured_bytes.size() != model.measured_best.size() ||
      !std::is_sorted(model.measured_bytes.begin(), model.measured_bytes.end())) {
    throw ConfigError(str_cat("cost model file '", path,
                              "': measured.bytes must be ascending and match measured.best"));
  }
  for (const std::string& name : model.measured_best) {
    if (name != "ring" && name != "star" && name != "rhd" && name != "native") {
      throw ConfigError(str_cat("cost model file '", path, "': measured algorithm '", name,
                                "' (valid: ring, star, rhd, native)"));
    }
  }
  return model;
}

void save_cost_model(const CostModel& model, const std::string& path) {
  std::ofstream out(path);
  out.precision(6);
  out << "# braid allreduce cost model: T(S) = alpha + S*beta per message, S*gamma to reduce\n"
      << "alpha_s: " << model.alpha_s << "\nbeta_s_per_byte: " << model.beta_s_per_byte
      << "\ngamma_s_per_byte: " << model.gamma_s_per_byte << "\n";
  if (!model.measured_bytes.empty()) {
    out << "measured:\n  ranks: " << model.measured_ranks << "\n  bytes: [";
    for (std::size_t i = 0; i < model.measured_bytes.size(); ++i)
      out << (i ? ", " : "") << model.measured_bytes[i];
    out << "]\n  best: [";
    for (std::size_t i = 0; i < model.measured_best.size(); ++i)
      out << (i ? ", " : "") << model.measured_best[i];
    out << "]\n";
  }
  if (!out) throw Error(str_cat("cannot write cost model file '", path, "'"));
}

}  // namespace braid
