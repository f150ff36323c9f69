#include "runtime/config_options.h"

namespace braid {

DataParallelOptions data_parallel_options(const Config& config) {
  DataParallelOptions o;
  o.strategy = config.sync.strategy;
  o.algorithm = config.sync.algorithm;
  o.bucket_mb = config.sync.bucket_mb;
  o.overlap = config.sync.overlap;
  o.cost_model = config.sync.cost_model;
  o.timeout_s = config.runtime.timeout_s;
  o.debug_checks = config.runtime.debug_checks;
  o.ranks_per_node = static_cast<int>(config.runtime.ranks_per_node);
  o.clip_norm = config.optimizer.clip_norm;
  o.broadcast_buffers = config.sync.broadcast_buffers;
  o.compression.compression.name = config.compression.name;
  o.compression.compression.ratio = config.compression.ratio;
  o.compression.compression.bits = static_cast<int>(config.compression.bits);
  o.compression.compression.seed = config.run.seed;
  o.compression.compression.rank = static_cast<int>(config.compression.rank);
  o.compression.compression.scale = config.compression.scale;
  o.compression.compression.exchange = config.compression.exchange;
  o.compression.compression.estimate_init = config.compression.estimate_init;
  o.compression.error_feedback = config.compression.error_feedback;
  o.compression.eta = config.compression.eta;
  o.compression.dense_steps = config.compression.dense_steps;
  DgcOptions& dgc = o.compression.compression.dgc;
  dgc.momentum = config.optimizer.momentum;
  dgc.nesterov = config.optimizer.nesterov;
  dgc.momentum_masking = config.compression.momentum_masking;
  o.compression.compression.momentum_correction = config.compression.momentum_correction;
  dgc.warmup_epochs = config.compression.warmup_epochs;
  o.outer.steps = config.outer.steps;
  o.outer.optimizer = {config.outer.optimizer, config.outer.lr, config.outer.momentum};
  o.outer.fragments = config.outer.fragments;
  o.outer.fragment_pattern = config.outer.fragment_pattern;
  o.outer.delay_steps = config.outer.delay_steps;
  o.outer.mix = config.outer.mix;
  o.outer.wire = config.outer.wire;
  o.outer.staleness_penalty = config.outer.staleness_penalty;
  o.outer.clip_norm = config.outer.clip_norm;
  o.outer.clip_threshold = config.outer.clip_threshold;
  o.outer.reset = config.outer.reset;
  o.coding_scheme = config.coding.scheme;
  o.coding_stragglers = static_cast<int>(config.coding.stragglers);
  o.coding_burst = static_cast<int>(config.coding.burst);
  o.coding_window = static_cast<int>(config.coding.window);
  o.coding_lambda = static_cast<int>(config.coding.lambda);
  o.coding_mu = config.coding.mu;
  o.nonfinite = config.train.nonfinite;
  AggregatorOptions& a = o.aggregator;
  a.name = config.sync.aggregator;
  a.byzantine = static_cast<int>(config.sync.byzantine);
  a.trim = config.sync.trim;
  a.krum_m = static_cast<int>(config.sync.krum_m);
  a.clip_radius = config.sync.clip_radius;
  a.clip_iterations = static_cast<int>(config.sync.clip_iterations);
  a.flag_subspace = static_cast<int>(config.sync.flag_subspace);
  a.flag_lambda = config.sync.flag_lambda;
  a.flag_iterations = static_cast<int>(config.sync.flag_iterations);
  o.attack.name = config.inject.attack;
  for (std::int64_t r : config.inject.byzantine_ranks)
    o.attack.ranks.push_back(static_cast<int>(r));
  o.attack.alie_z = config.inject.alie_z;
  o.attack.ipm_epsilon = config.inject.ipm_epsilon;
  o.attack.seed = config.inject.seed;
  for (const auto& [a, b] : config.inject.slow_links) {
    o.slow_links.pairs.emplace_back(static_cast<int>(a), static_cast<int>(b));
  }
  o.slow_links.delay =
      std::chrono::microseconds(static_cast<std::int64_t>(config.inject.link_delay_ms * 1000));
  o.slow_links.slowdown = config.inject.link_slowdown;
  o.name = "model";  // errors say "DataParallel 'model'": braid train has one
  return o;
}

}  // namespace braid
