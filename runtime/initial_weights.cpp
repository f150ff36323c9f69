#include "runtime/initial_weights.h"

#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "runtime/checkpoint.h"
#include "runtime/state_dict_file.h"

namespace braid {
namespace {

[[noreturn]] void refuse(const std::string& path, const std::string& what) {
  throw ConfigError(str_cat("train.init_from: ", path, ": ", what));
}

StateDict read_weights(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) refuse(path, "no such file or directory");
  try {
    return is_checkpoint(path) ? checkpoint_weights(path) : read_state_dict(path);
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError(str_cat("train.init_from: ", e.what()));
  }
}

std::string shape(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

}  // namespace

int load_initial_weights(torch::nn::Module& model, const std::string& path) {
  const StateDict stored = read_weights(path);
  std::map<std::string, at::Tensor> by_name;
  for (const auto& [name, tensor] : stored) {
    if (!by_name.emplace(name, tensor).second) refuse(path, str_cat("'", name, "' appears twice"));
  }
  StateDict targets;  // the model's order, so the first mismatch named is the first in it
  std::set<std::string> target_names;
  for (const auto& item : model.named_parameters()) targets.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers()) targets.emplace_back(item.key(), item.value());
  for (const auto& [name, target] : targets) target_names.insert(name);
  // Checked in full before the first copy: a refused file leaves the model as it was.
  for (const auto& [name, target] : targets) {
    const auto found = by_name.find(name);
    if (found == by_name.end()) {
      refuse(path, str_cat("has no '", name, "', which the model has (", stored.size(),
                           " tensors in the file, ", targets.size(), " in the model)"));
    }
    if (!found->second.sizes().equals(target.sizes())) {
      refuse(path, str_cat("'", name, "' is ", shape(found->second), " in the file but ",
                           shape(target), " in the model"));
    }
  }
  for (const auto& [name, tensor] : stored) {
    if (!target_names.count(name)) refuse(path, str_cat("has '", name, "', which the model lacks"));
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) target.copy_(by_name.at(name));
  return static_cast<int>(targets.size());
}

}  // namespace braid
