#include "runtime/straggler.h"

#include <chrono>
#include <thread>

#include "common/error.h"
#include "compression/seeded_rng.h"

namespace braid {

StragglerInjection::StragglerInjection(const InjectConfig& config, int rank, int world)
    : config_(config), rank_(rank) {
  for (std::int64_t r : config_.slow_ranks) {
    if (r >= world) {
      throw ConfigError(str_cat("inject.slow_ranks: rank ", r, " does not exist in a ", world,
                                "-rank job (ranks 0..", world - 1, ")"));
    }
    listed_ = listed_ || r == rank;
  }
  if (!config_.trace.empty()) trace_ = StragglerTrace::load(config_.trace, rank, world);
}

namespace {

bool ranks_slowed(const InjectConfig& c) {
  return !c.slow_ranks.empty() && (c.slowdown > 1 || c.delay_ms > 0) && c.probability > 0;
}

}  // namespace

bool StragglerInjection::enabled() const { return ranks_slowed(config_) || !trace_.empty(); }

bool StragglerInjection::slow_at(std::int64_t step) const {
  if (!listed_) return false;
  // The same portable stream the randomised compressors draw from, keyed by (seed, step, rank).
  SeededRng rng({config_.seed, 0x696E6A656374ull, static_cast<std::uint64_t>(step),
                 static_cast<std::uint64_t>(rank_)});
  return rng.uniform() < config_.probability;
}

double StragglerInjection::after_compute(std::int64_t step, double compute_s) const {
  double wait_s = trace_.delay_ms(step) / 1e3;
  if (slow_at(step)) wait_s += (config_.slowdown - 1) * compute_s + config_.delay_ms / 1e3;
  if (wait_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
  return wait_s;
}

std::string StragglerInjection::describe() const {
  std::string ranks, out;
  for (std::int64_t r : config_.slow_ranks)
    ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  if (ranks_slowed(config_)) {
    out = str_cat("ranks [", ranks, "] slowed ", config_.slowdown, "x + ", config_.delay_ms,
                  " ms with probability ", config_.probability, " (seed ", config_.seed, ")");
  }
  if (!trace_.empty()) {
    out += str_cat(out.empty() ? "" : "; ", "trace ", config_.trace, " (", trace_.lines(),
                   " delayed steps of ranks)");
  }
  return out;
}

}  // namespace braid
