#include "collectives/cost_model.h"

#include <algorithm>
#include <cmath>

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

namespace {
const char* const kMeasuredNames[] = {"ring", "star", "rhd", "native"};
constexpr std::size_t kHeader = 5;

bool is_whole(double v, double lo, double hi) { return v >= lo && v <= hi && v == std::floor(v); }
}  // namespace

std::vector<double> CostModel::serialize() const {
  std::vector<double> out = {alpha_s, beta_s_per_byte, gamma_s_per_byte,
                             static_cast<double>(measured_ranks),
                             static_cast<double>(measured_bytes.size())};
  for (std::size_t bytes : measured_bytes) out.push_back(static_cast<double>(bytes));
  for (const std::string& name : measured_best) {
    auto* end = std::end(kMeasuredNames);
    auto* it = std::find(std::begin(kMeasuredNames), end, name);
    BRAID_CHECK(it != end, "cost model names unknown algorithm '", name, "'");
    out.push_back(static_cast<double>(it - std::begin(kMeasuredNames)));
  }
  return out;
}

CostModel CostModel::deserialize(const std::vector<double>& v) {
  auto bad = [&](const std::string& why) {
    return CommError(str_cat("received cost model is malformed: ", why));
  };
  if (v.size() < kHeader) throw bad(str_cat(v.size(), " values, need at least ", kHeader));
  const double n = v[4];
  if (!is_whole(n, 0, 1e6) || v.size() != kHeader + 2 * static_cast<std::size_t>(n)) {
    throw bad(str_cat(v.size(), " values for ", n, " measured sizes"));
  }
  CostModel model;
  model.alpha_s = v[0];
  model.beta_s_per_byte = v[1];
  model.gamma_s_per_byte = v[2];
  if (!(model.alpha_s >= 0 && model.beta_s_per_byte > 0 && model.gamma_s_per_byte >= 0) ||
      !std::isfinite(model.alpha_s + model.beta_s_per_byte + model.gamma_s_per_byte)) {
    throw bad("alpha, beta, gamma must be finite and non-negative (beta positive)");
  }
  if (!is_whole(v[3], 0, 1e9)) throw bad(str_cat("measured ranks ", v[3]));
  model.measured_ranks = static_cast<int>(v[3]);
  const std::size_t count = static_cast<std::size_t>(n);
  for (std::size_t i = 0; i < count; ++i) {
    const double bytes = v[kHeader + i], code = v[kHeader + count + i];
    if (!is_whole(bytes, 0, 0x1p53) || !is_whole(code, 0, 3)) {
      throw bad(str_cat("measured entry ", i, " is (", bytes, " bytes, algorithm ", code, ")"));
    }
    model.measured_bytes.push_back(static_cast<std::size_t>(bytes));
    model.measured_best.push_back(kMeasuredNames[static_cast<int>(code)]);
  }
  if (!std::is_sorted(model.measured_bytes.begin(), model.measured_bytes.end())) {
    throw bad("measured sizes are not ascending");
  }
  return model;
}

}  // namespace braid
