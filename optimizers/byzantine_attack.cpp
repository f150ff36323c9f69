#include "optimizers/byzantine_attack.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "compression/seeded_rng.h"

namespace braid {

const std::vector<std::string>& attack_names() {
  static const std::vector<std::string> names = {"none", "sign_flip", "scale", "alie",
                                                 "ipm",  "random",    "drop",  "nan"};
  return names;
}

bool attacking(const AttackOptions& o) { return o.name != "none" && !o.ranks.empty(); }

bool is_byzantine(const AttackOptions& o, int rank) {
  return attacking(o) && std::find(o.ranks.begin(), o.ranks.end(), rank) != o.ranks.end();
}

bool omniscient(const AttackOptions& o) { return o.name == "alie" || o.name == "ipm"; }

void check_attack(const AttackOptions& o, int ranks) {
  const auto& names = attack_names();
  if (std::find(names.begin(), names.end(), o.name) == names.end()) {
    throw ConfigError(
        str_cat("inject.attack: unknown attack '", o.name, "' (valid: ", join(names), ")"));
  }
  if ((o.name == "none") != o.ranks.empty()) {
    throw ConfigError(o.ranks.empty()
                          ? str_cat("inject.attack ", o.name, " needs inject.byzantine_ranks")
                          : std::string("inject.byzantine_ranks needs an inject.attack"));
  }
  for (std::size_t i = 0; i < o.ranks.size(); ++i) {
    const int r = o.ranks[i];
    if (std::find(o.ranks.begin(), o.ranks.begin() + i, r) != o.ranks.begin() + i) {
      throw ConfigError(str_cat("inject.byzantine_ranks: rank ", r, " is listed twice"));
    }
    if (r < 0 || (ranks > 0 && r >= ranks)) {
      throw ConfigError(
          str_cat("inject.byzantine_ranks: rank ", r, " is not one of the ", ranks, " ranks"));
    }
  }
  if (ranks > 0 && omniscient(o) && static_cast<int>(o.ranks.size()) >= ranks) {
    throw ConfigError(str_cat("inject.attack ", o.name, " needs at least one honest rank"));
  }
}

namespace {

// Writes `draw(rng)` into every element of `out` (float64, contiguous), one SeededRng per block
// of 4096 elements so that long gradients need not be drawn one after the other.
template <typename Draw>
void fill_seeded(at::Tensor out, const AttackOptions& o, std::int64_t step, int rank, Draw draw) {
  double* p = out.data_ptr<double>();
  constexpr std::int64_t kBlock = 4096;
  for (std::int64_t start = 0; start < out.numel(); start += kBlock) {
    SeededRng rng({o.seed, static_cast<std::uint64_t>(step), static_cast<std::uint64_t>(rank),
                   static_cast<std::uint64_t>(start / kBlock)});
    const std::int64_t end = std::min(out.numel(), start + kBlock);
    for (std::int64_t i = start; i < end; ++i) p[i] = draw(rng, p[i]);
  }
}

double gaussian(SeededRng& rng) {        // Box-Muller
  const double u = 1.0 - rng.uniform();  // (0, 1]
  return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * M_PI * rng.uniform());
}

}  // namespace

void attack_outgoing(const AttackOptions& o, int rank, std::int64_t step, at::Tensor gradient) {
  if (!is_byzantine(o, rank) || omniscient(o)) return;
  BRAID_CHECK(gradient.device().is_cpu(), "attacks run on CPU gradients");
  if (o.name == "sign_flip") {
    gradient.neg_();
  } else if (o.name == "scale") {
    gradient.mul_(-10.0);
  } else if (o.name == "nan") {
    gradient.fill_(std::numeric_limits<double>::quiet_NaN());
  } else {
    at::Tensor work = gradient.to(at::kDouble).contiguous();
    if (o.name == "random") {
      fill_seeded(work, o, step, rank, [](SeededRng& rng, double) { return gaussian(rng); });
    } else {
      BRAID_CHECK(o.name == "drop", "unknown attack ", o.name);
      fill_seeded(work, o, step, rank,
                  [](SeededRng& rng, double g) { return rng.uniform() < 0.1 ? 0.0 : g; });
    }
    gradient.copy_(work);
  }
}

void attack_rows(const AttackOptions& o, at::Tensor rows) {
  if (!attacking(o) || !omniscient(o)) return;
  std::vector<std::int64_t> honest;
  for (std::int64_t r = 0; r < rows.size(0); ++r)
    if (!is_byzantine(o, static_cast<int>(r))) honest.push_back(r);
  const at::Tensor good = rows.index_select(0, at::tensor(honest, at::kLong));
  const at::Tensor mean = good.mean(0);
  const at::Tensor bad = o.name == "alie"
                             ? mean - o.alie_z * good.std(0, /*unbiased=*/honest.size() > 1)
                             : -o.ipm_epsilon * mean;
  for (int r : o.ranks)
    if (r < rows.size(0)) rows[r].copy_(bad);
}

}  // namespace braid
