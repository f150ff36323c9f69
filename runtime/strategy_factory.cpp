#include "runtime/strategy_factory.h"

#include "common/error.h"
#include "common/require_option.h"
#include "optimizers/allreduce_strategy.h"
#include "optimizers/co2_strategy.h"
#include "optimizers/diloco_strategy.h"
#include "optimizers/gradient_coding_strategy.h"
#include "optimizers/local_sgd_strategy.h"
#include "optimizers/sequential_coding_strategy.h"
#include "optimizers/streaming_diloco_strategy.h"
#include "runtime/data_parallel.h"

namespace braid {

const std::vector<std::string>& strategy_names(bool planned_too) {
  static const std::vector<std::string> implemented = {
      "allreduce", "local_sgd",       "diloco",           "streaming_diloco",
      "co2",       "gradient_coding", "sequential_coding"};
  static const std::vector<std::string> with_planned = implemented;
  return planned_too ? with_planned : implemented;
}

std::string data_parallel_label(const std::string& name) {
  if (name.empty()) return "DataParallel";
  return name[0] == '#' ? "DataParallel " + name + " (DataParallelOptions::name names it)"
                        : "DataParallel '" + name + "'";
}

namespace {

std::string quoted(const std::string& value) { return "'" + value + "'"; }

}  // namespace

void check_strategy_options(const DataParallelOptions& o) {
  const CompressionOptions& c = o.compression.compression;
  const std::string& feedback = o.compression.error_feedback;
  const bool allreduce = o.strategy == "allreduce";
  if (o.compression.dense_steps > 0) {
    require_option(c.name != "none" || feedback != "none", "compression.dense_steps",
                   "0 without compression (nothing to start later)",
                   std::to_string(o.compression.dense_steps));
    require_option(c.name != "dgc", "compression.dense_steps",
                   "0 with compression.name dgc (its warm-up is compression.warmup_epochs)",
                   std::to_string(o.compression.dense_steps));
    require_option(
        allreduce, "sync.strategy",
        "allreduce with compression.dense_steps (local-update rounds compress every round)",
        quoted(o.strategy));
  }
  if (c.momentum_correction) {
    // The momentum moves from the optimizer into the gradient exchange of the allreduce strategy.
    require_option(allreduce, "sync.strategy", "allreduce with compression.momentum_correction",
                   quoted(o.strategy));
    require_option(c.name != "dgc", "compression.momentum_correction",
                   "false with compression.name dgc (dgc always corrects the momentum)", "true");
  }
  if (c.name == "dgc") {
    // DGC's momentum correction replaces the optimizer's momentum and sends sparse gradients
    // through the allreduce strategy's buckets; its accumulated velocity is its error feedback.
    require_option(allreduce, "sync.strategy", "allreduce with compression.name dgc",
                   quoted(o.strategy));
    require_option(feedback == "none", "compression.error_feedback",
                   "none with compression.name dgc (its velocity is its error feedback)",
                   quoted(feedback));
    // DGC clears from its velocity exactly what it sent: a second compression on the way would
    // lose what it drops.
    require_option(c.exchange != "two_phase", "compression.exchange",
                   "gather or auto with compression.name dgc (two_phase recompresses on the way)",
                   quoted(c.exchange));
  }
  check_aggregator(o.aggregator, 0);
  check_attack(o.attack, 0);
  if (robust_aggregation({o.aggregator, o.attack})) {
    const std::string what = o.aggregator.name != "mean" ? "sync.aggregator " + o.aggregator.name
                                                         : "inject.attack " + o.attack.name;
    require_option(allreduce, "sync.strategy", str_cat("allreduce with ", what),
                   quoted(o.strategy));
    const std::string exact =
        str_cat("none with ", what, " (the rules need every rank's exact gradient)");
    require_option(c.name == "none", "compression.name", exact, quoted(c.name));
    require_option(feedback == "none", "compression.error_feedback", exact, quoted(feedback));
  }
  if (feedback == "ef21" || feedback == "econtrol") {
    require_option(
        c.exchange != "two_phase", "compression.exchange",
        str_cat("gather or auto with compression.error_feedback ", feedback,
                " (it needs the exact mean of what every rank sent; two_phase recompresses "
                "on the way)"),
        quoted(c.exchange));
  }
}

// Every unit's loss is a mean over the same number of samples, so the decoded sum of units is the
// batch's mean gradient.
void check_strategy_for_job(const DataParallelOptions& o, int world_size, std::int64_t batch_size,
                            std::int64_t accumulate_steps) {
  if (o.strategy != "sequential_coding") return;
  const SequentialCode code(o.coding_scheme, world_size, o.coding_burst, o.coding_window,
                            o.coding_lambda);
  const auto fits = [&](std::int64_t b) {
    return (b * accumulate_steps * world_size) % code.units() == 0;
  };
  if (fits(batch_size)) return;
  std::int64_t below = batch_size, above = batch_size;
  while (below > 1 && !fits(below)) --below;
  while (!fits(above)) ++above;
  throw ConfigError(str_cat("data.batch_size ", batch_size, ": sync.strategy sequential_coding (",
                            o.coding_scheme, ") cuts each step's global batch of ",
                            batch_size * accumulate_steps * world_size, " samples into ",
                            code.units(), " equal units; use data.batch_size ",
                            fits(below) ? str_cat(below, " or ") : "", above));
}

std::vector<std::string> strategy_option_warnings(const DataParallelOptions& o) {
  const std::string& name = o.compression.compression.name;
  const std::string& feedback = o.compression.error_feedback;
  std::vector<std::string> warnings;
  auto known_to_diverge = [&](const std::string& what, const std::string& advice) {
    warnings.push_back(str_cat(what,
                               " is known to diverge on braid's shipped configs at their "
                               "default learning rates; ",
                               advice));
  };
  // Random-k's error feedback returns each coordinate after a geometric wait (100 steps on
  // average at 1%), and momentum multiplies that delayed mass: on the cnn at momentum 0.9 ef,
  // ef21 and econtrol end at chance at 1% kept, corrected or not, and ef at 10%; with
  // momentum 0 at 10% ef trains.
  if (name == "randomk" && feedback != "none") {
    known_to_diverge(str_cat("compression.name randomk with error_feedback ", feedback),
                     "prefer topk with error feedback, randomk without it, or optimizer.momentum 0 "
                     "with a lower optimizer.lr");
  }
  if (name == "sign" && (feedback == "econtrol" || feedback == "ef21")) {
    known_to_diverge(str_cat("compression.name sign with error_feedback ", feedback),
                     feedback == "econtrol"
                         ? "prefer error_feedback ef with sign, or lower compression.eta and "
                           "optimizer.lr"
                         : "prefer error_feedback ef with sign, or lower optimizer.lr");
  }
  if (o.strategy == "diloco" && name == "topk" && feedback == "ef") {
    known_to_diverge("sync.strategy diloco with topk and error_feedback ef",
                     "lower outer.lr (or optimizer.lr), or raise compression.ratio");
  }
  return warnings;
}

std::unique_ptr<SyncStrategy> make_strategy(std::shared_ptr<Communicator> comm,
                                            const DataParallelOptions& options) {
  check_strategy_options(options);
  const NonFinitePolicy nonfinite = parse_nonfinite_policy(options.nonfinite);
  if (options.strategy == "allreduce") {
    return std::make_unique<AllreduceStrategy>(
        std::move(comm),
        AllreduceStrategyOptions{options.algorithm, options.bucket_mb, options.overlap,
                                 options.clip_norm, options.compression, nonfinite,
                                 RobustOptions{options.aggregator, options.attack},
                                 data_parallel_label(options.name)});
  }
  const LocalUpdateOptions local{options.algorithm,   options.bucket_mb, options.clip_norm,
                                 options.compression, options.outer,     nonfinite};
  if (options.strategy == "local_sgd") return std::make_unique<LocalSgdStrategy>(comm, local);
  if (options.strategy == "diloco") return std::make_unique<DilocoStrategy>(comm, local);
  if (options.strategy == "streaming_diloco") {
    return std::make_unique<StreamingDilocoStrategy>(comm, local);
  }
  if (options.strategy == "co2") return std::make_unique<Co2Strategy>(comm, local);
  if (options.strategy == "gradient_coding") {
    return std::make_unique<GradientCodingStrategy>(
        comm, GradientCodingOptions{options.coding_scheme, options.coding_stragglers,
                                    options.clip_norm, nonfinite});
  }
  if (options.strategy == "sequential_coding") {
    return std::make_unique<SequentialCodingStrategy>(comm,
                                                      SequentialCodingOptions{options.coding_scheme,
                                                                              options.coding_burst,
                                                                              options.coding_window,
                                                                              options.coding_lambda,
                                                                              options.coding_mu,
                                                                              options.clip_norm,
                                                                              nonfinite,
                                                                              {}});
  }
  throw ConfigError(str_cat("sync.strategy: unknown strategy '", options.strategy,
                            "' (valid: ", join(strategy_names()), ")"));
}

}  // namespace braid
