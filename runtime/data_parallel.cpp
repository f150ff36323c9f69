#include "runtime/data_parallel.h"

#include <torch/nn/module.h>

#include "common/error.h"
#include "runtime/cost_model_file.h"
#include "runtime/strategy_factory.h"
#include "runtime/world.h"

namespace braid {

NamedTensors named_parameters(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    out.emplace_back(item.key(), item.value());
  }
  return out;
}

std::shared_ptr<Communicator> make_communicator(const World& world,
                                                const DataParallelOptions& options) {
  CommOptions comm;
  comm.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(options.timeout_s * 1000));
  comm.debug_checks = options.debug_checks;
  // The communicator gives every rank rank 0's model, but every rank reads the file (its
  // contents are part of braid train's config hash), and all agree that they could before the
  // communicator's first collective: a rank that cannot read it must not leave the others
  // waiting in that collective.
  std::string error;
  try {
    if (!options.cost_model.empty()) comm.allreduce.cost_model = load_cost_model(options.cost_model);
  } catch (const ConfigError& e) {
    error = e.what();
  }
  if (const int failing = world.lowest_failing_rank(!error.empty()); failing >= 0) {
    throw ConfigError(error.empty() ? str_cat("sync.cost_model: rank ", failing, " cannot read '",
                                              options.cost_model, "'")
                                    : error);
  }
  return std::make_shared<Communicator>(world.make_transport(), comm);
}

DataParallel::DataParallel(const World& world, const NamedTensors& parameters,
                           DataParallelOptions options)
    : DataParallel(make_communicator(world, options), parameters, options) {}

DataParallel::DataParallel(std::shared_ptr<Communicator> comm, const NamedTensors& parameters,
                           DataParallelOptions options)
    : comm_(std::move(comm)), strategy_(make_strategy(comm_, options)) {
  strategy_->attach(parameters);
}

void DataParallel::step(torch::optim::Optimizer& optimizer) { strategy_->step(optimizer); }

}  // namespace braid
