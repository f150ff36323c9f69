#include "collectives/cost_model.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>

#include "common/error.h"

namespace braid {

double CostModel::predict(const std::string& algorithm, int ranks, std::size_t bytes) const {
  if (ranks <= 1) return 0.0;
  const double p = ranks, s = static_cast<double>(bytes);
  const double a = alpha_s, b = beta_s_per_byte, g = gamma_s_per_byte;
  if (algorithm == "ring") {
    return 2 * (p - 1) * a + 2 * (p - 1) / p * s * b + (p - 1) / p * s * g;
  }
  if (algorithm == "star") {
    return 2 * a + 2 * (p - 1) * s * b + (p - 1) * s * g;
  }
  if (algorithm == "rhd") {
    int pof2 = 1;
    while (pof2 * 2 <= ranks) pof2 *= 2;
    const double q = pof2, steps = std::log2(q);
    double t = 2 * steps * a + 2 * (q - 1) / q * s * b + (q - 1) / q * s * g;
    if (pof2 != ranks) t += 2 * (a + s * b) + s * g;  // fold in and out the extra ranks
    return t;
  }
  BRAID_CHECK(false, "no cost formula for algorithm '", algorithm, "'");
}

std::string CostModel::choose(int ranks, std::size_t bytes, bool native_available) const {
  if (ranks == measured_ranks && !measured_bytes.empty()) {
    std::size_t nearest = 0;
    double distance = 1e300;
    for (std::size_t i = 0; i < measured_bytes.size(); ++i) {
      double d = std::abs(std::log2(static_cast<double>(std::max<std::size_t>(bytes, 1))) -
                          std::log2(static_cast<double>(measured_bytes[i])));
      if (d < distance) {
        distance = d;
        nearest = i;
      }
    }
    if (measured_best[nearest] != "native" || native_available) return measured_best[nearest];
  }
  // rhd first: on a tie (P = 2, where both are one exchange each way) it has less to set up.
  std::string best = "rhd";
  double best_time = predict(best, ranks, bytes);
  for (const char* candidate : {"ring", "star"}) {
    double t = predict(candidate, ranks, bytes);
    if (t < best_time) {
      best = candidate;
      best_time = t;
    }
  }
  return best;
}

CostModel CostModel::load(const std::string& path) {
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

void CostModel::save(const std::string& path) const {
  std::ofstream out(path);
  out.precision(6);
  out << "# braid allreduce cost model: T(S) = alpha + S*beta per message, S*gamma to reduce\n"
      << "alpha_s: " << alpha_s << "\nbeta_s_per_byte: " << beta_s_per_byte
      << "\ngamma_s_per_byte: " << gamma_s_per_byte << "\n";
  if (!measured_bytes.empty()) {
    out << "measured:\n  ranks: " << measured_ranks << "\n  bytes: [";
    for (std::size_t i = 0; i < measured_bytes.size(); ++i)
      out << (i ? ", " : "") << measured_bytes[i];
    out << "]\n  best: [";
    for (std::size_t i = 0; i < measured_best.size(); ++i)
      out << (i ? ", " : "") << measured_best[i];
    out << "]\n";
  }
  if (!out) throw Error(str_cat("cannot write cost model file '", path, "'"));
}

CostModel CostModel::from_environment() {
  const char* path = std::getenv("BRAID_COST_MODEL");
  return path && *path ? load(path) : CostModel{};
}

}  // namespace braid
