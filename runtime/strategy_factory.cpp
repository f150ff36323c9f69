#include "runtime/strategy_factory.h"

#include "common/error.h"
#include "optimizers/allreduce_strategy.h"
#include "optimizers/co2_strategy.h"
#include "optimizers/diloco_strategy.h"
#include "optimizers/gradient_coding_strategy.h"
#include "optimizers/local_sgd_strategy.h"
#include "optimizers/streaming_diloco_strategy.h"
#include "runtime/data_parallel.h"

namespace braid {

const std::vector<std::string>& strategy_names(bool planned_too) {
  static const std::vector<std::string> implemented = {
      "allreduce", "local_sgd", "diloco", "streaming_diloco", "co2", "gradient_coding"};
  static const std::vector<std::string> with_planned = implemented;
  return planned_too ? with_planned : implemented;
}

std::string data_parallel_label(const std::string& name) {
  if (name.empty()) return "DataParallel";
  return name[0] == '#' ? "DataParallel " + name + " (DataParallelOptions::name names it)"
                        : "DataParallel '" + name + "'";
}

std::unique_ptr<SyncStrategy> make_strategy(std::shared_ptr<Communicator> comm,
                                            const DataParallelOptions& options) {
  const NonFinitePolicy nonfinite = parse_nonfinite_policy(options.nonfinite);
  if (options.strategy == "allreduce") {
    return std::make_unique<AllreduceStrategy>(
        std::move(comm),
        AllreduceStrategyOptions{options.algorithm, options.bucket_mb, options.overlap,
                                 options.clip_norm, options.compression, nonfinite,
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
  throw ConfigError(str_cat("sync.strategy: unknown strategy '", options.strategy,
                            "' (valid: ", join(strategy_names()), ")"));
}

}  // namespace braid
