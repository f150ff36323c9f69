#include "runtime/data_parallel.h"

#include <algorithm>
#include <atomic>
#include <exception>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <torch/nn/module.h>

#include "collectives/tensor.h"
#include "common/error.h"
#include "compression/compressor.h"
#include "optimizers/replicas.h"
#include "runtime/cost_model_file.h"
#include "runtime/option_names.h"
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
  comm.recorder = options.flight_recorder;
  // The communicator gives every rank rank 0's model, but every rank reads the file (its
  // contents are part of braid train's config hash), and all agree that they could before the
  // communicator's first collective: a rank that cannot read it must not leave the others
  // waiting in that collective.
  std::string error;
  try {
    if (!options.cost_model.empty())
      comm.allreduce.cost_model = load_cost_model(options.cost_model);
  } catch (const ConfigError& e) {
    error = e.what();
  }
  if (const int failing = world.lowest_failing_rank(!error.empty()); failing >= 0) {
    throw ConfigError(with_option_names(
        error.empty()
            ? str_cat("sync.cost_model: rank ", failing, " cannot read '", options.cost_model, "'")
            : error));
  }
  std::shared_ptr<Transport> transport =
      world.make_transport(options.device, options.ranks_per_node, comm.timeout);
  if (!options.slow_links.pairs.empty()) {
    for (const auto& [a, b] : options.slow_links.pairs) {
      if (std::max(a, b) >= world.size()) {
        throw ConfigError(str_cat("inject.slow_links: [", a, ", ", b,
                                  "] names a rank that does "
                                  "not exist in a ",
                                  world.size(), "-rank job"));
      }
    }
    transport = std::make_shared<SlowLinkTransport>(transport, options.slow_links);
  }
  return std::make_shared<Communicator>(transport, comm);
}

NamedTensors named_buffers(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    out.emplace_back(item.key(), item.value());
  }
  return out;
}

DataParallel::DataParallel(const World& world, const NamedTensors& parameters,
                           DataParallelOptions options, const NamedTensors& buffers)
    : DataParallel(make_communicator(world, options), parameters, options, buffers) {}

DataParallel::DataParallel(const World& world, const torch::nn::Module& module,
                           DataParallelOptions options)
    : DataParallel(world, named_parameters(module), std::move(options), named_buffers(module)) {}

DataParallel::DataParallel(std::shared_ptr<Communicator> comm, const torch::nn::Module& module,
                           DataParallelOptions options)
    : DataParallel(std::move(comm), named_parameters(module), std::move(options),
                   named_buffers(module)) {}

DataParallel::~DataParallel() = default;

namespace {

// Every DataParallel of the process has a name for error messages; unnamed ones are numbered.
DataParallelOptions named(DataParallelOptions options) {
  static std::atomic<int> constructed{0};
  const int k = ++constructed;
  if (options.name.empty()) options.name = str_cat("#", k);
  return options;
}

// Only some compressors run on CUDA tensors (compression/compressor.h); the others would read
// device memory through host pointers, so they are refused before anything runs.
const DataParallelOptions& checked_for_device(const DataParallelOptions& options) {
  const std::string& name = options.compression.compression.name;
  const auto& on_device = device_compressor_names();
  if (options.device.is_cuda() &&
      std::find(on_device.begin(), on_device.end(), name) == on_device.end()) {
    throw ConfigError(str_cat("compression.name '", name, "' compresses CPU tensors only; with ",
                              "runtime.device cuda use one of ", join(on_device),
                              " (or runtime.device: cpu)"));
  }
  if (options.device.is_cuda() && robust_aggregation({options.aggregator, options.attack})) {
    throw ConfigError(str_cat("sync.aggregator ", options.aggregator.name, " and inject.attack ",
                              options.attack.name,
                              " aggregate CPU gradients only; use runtime.device: cpu"));
  }
  if (options.device.is_cuda() && options.strategy == "sequential_coding") {
    throw ConfigError(
        "sync.strategy sequential_coding decodes CPU gradients only; use runtime.device: cpu");
  }
  return options;
}

// The strategy, with errors that name config keys also naming the options' fields.
std::unique_ptr<SyncStrategy> strategy_for(std::shared_ptr<Communicator> comm,
                                           const DataParallelOptions& options) {
  try {
    return make_strategy(std::move(comm), checked_for_device(options));
  } catch (const ConfigError& e) {
    throw ConfigError(with_option_names(e.what()));
  }
}

}  // namespace

DataParallel::DataParallel(std::shared_ptr<Communicator> comm, const NamedTensors& parameters,
                           DataParallelOptions options, const NamedTensors& buffers)
    // Members initialise in declaration order: strategy_ names `options` before name_ reads it.
    : comm_(std::move(comm)),
      strategy_(strategy_for(comm_, options = named(std::move(options)))),
      broadcast_buffers_(options.broadcast_buffers),
      name_(options.name) {
  try {
    strategy_->attach(parameters);
  } catch (const ConfigError& e) {
    throw ConfigError(with_option_names(e.what()));
  }
  if (comm_->rank() == 0) {
    for (const std::string& warning : strategy_option_warnings(options)) {
      spdlog::warn("{}: {}", data_parallel_label(name_), with_option_names(warning));
    }
  }
  for (const auto& [name, tensor] : parameters) parameters_.push_back(tensor);
  for (const auto& [name, tensor] : buffers) buffers_.push_back(tensor);
  if (!buffers_.empty()) make_replicas_identical(*comm_, buffers_, 0);
}

void DataParallel::step(torch::optim::Optimizer& optimizer) {
  if (!join_channel_) return run_step(optimizer);
  // This rank trains this step: its vote overlaps the step's own exchange.
  at::Tensor vote = at::ones({1}, at::kDouble);
  Work voted = join_channel_->allreduce(as_buffer(vote), ReduceOp::kSum);
  run_step(optimizer);
  voted.wait();
}

void DataParallel::run_step(torch::optim::Optimizer& optimizer) {
  strategy_->step(optimizer);
  // Forward passes changed each rank's running statistics differently; rank 0's win.
  if (broadcast_buffers_ && !buffers_.empty()) broadcast_parameters(*comm_, buffers_, 0);
}

int DataParallel::vote_active(bool active) {
  at::Tensor vote = at::full({1}, active ? 1.0 : 0.0, at::kDouble);
  join_channel_->allreduce(as_buffer(vote), ReduceOp::kSum).wait();
  return static_cast<int>(vote.item<double>());
}

DataParallel::Join::Join(DataParallel& dp, torch::optim::Optimizer& optimizer)
    : dp_(dp), optimizer_(optimizer) {
  if (std::string(dp.strategy_->name()) != "allreduce") {
    throw ConfigError(str_cat("join(): ", data_parallel_label(dp.name_), " uses sync.strategy '",
                              dp.strategy_->name(),
                              "'; uneven inputs are supported with allreduce only"));
  }
  BRAID_CHECK(!dp.join_channel_, "join(): a join scope of ", data_parallel_label(dp.name_),
              " is open already");
  dp.join_channel_ = dp.comm_->channel(dp.comm_->options());
}

DataParallel::Join::~Join() noexcept(false) {
  if (std::uncaught_exceptions() > 0) {
    dp_.join_channel_.reset();  // the ranks are out of step already; the error says why
    return;
  }
  struct Close {
    DataParallel& dp;
    ~Close() { dp.join_channel_.reset(); }
  } close{dp_};
  while (dp_.vote_active(false) > 0) {
    // Shadow one step of the ranks still training: no gradient of this rank's own.
    for (at::Tensor& p : dp_.parameters_) p.mutable_grad() = at::Tensor();
    dp_.run_step(optimizer_);
  }
}

}  // namespace braid
