#include "runtime/torchscript_model.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <optional>
#include <utility>

#include "common/error.h"

namespace braid {
namespace {

// The line of a LibTorch error that says what went wrong: the first of a C++ error (a stack
// follows), the last of a TorchScript one (its traceback comes first, "RuntimeError: ..." last).
std::string first_line(const std::exception& e) {
  std::string what = e.what();
  if (what.rfind("The following operation failed in the TorchScript interpreter", 0) == 0) {
    while (!what.empty() && what.back() == '\n') what.pop_back();
    return what.substr(what.rfind('\n') + 1);
  }
  return what.substr(0, what.find('\n'));
}

// Registers `scripted`'s own parameters and buffers on `mirror`, and a mirror of each child
// under the child's name, so the dotted names are Python's.
void mirror_tree(torch::nn::Module& mirror, const torch::jit::Module& scripted) {
  for (const auto& item : scripted.named_parameters(/*recurse=*/false)) {
    if (item.value.requires_grad()) {
      mirror.register_parameter(item.name, item.value);
    } else {
      mirror.register_buffer(item.name, item.value);
    }
  }
  for (const auto& item : scripted.named_buffers(/*recurse=*/false)) {
    mirror.register_buffer(item.name, item.value);
  }
  for (const auto& child : scripted.named_children()) {
    auto sub = std::make_shared<torch::nn::Module>(child.name);
    mirror_tree(*sub, child.value);
    mirror.register_module(child.name, sub);
  }
}

class TorchScriptModel : public Model {
 public:
  TorchScriptModel(torch::jit::Module scripted, std::string loss)
      : scripted_(std::move(scripted)), loss_(std::move(loss)) {
    mirror_tree(*this, scripted_);
    for (const auto& p : parameters()) {
      if (p.is_floating_point()) {
        input_dtype_ = p.scalar_type();
        break;
      }
    }
  }

  at::Tensor forward(const at::Tensor& inputs) override {
    const at::Tensor x = as_model_dtype(inputs);
    if (loss_ == "output") return x;  // the loss needs the targets too: loss() runs forward
    return tensor_result(scripted_.forward({x}), "forward(inputs)");
  }

  at::Tensor loss(const at::Tensor& out, const at::Tensor& targets) override {
    if (loss_ == "output") return tensor_result(scripted_.forward({out, targets}), "forward");
    if (loss_ == "mse") return at::mse_loss(out, targets.to(out.scalar_type()));
    return at::cross_entropy_loss(out.reshape({-1, out.size(-1)}), targets.reshape({-1}));
  }

  std::int64_t correct(const at::Tensor& out, const at::Tensor& targets) override {
    if (loss_ != "cross_entropy") return 0;
    return out.argmax(-1).eq(targets).sum().item<std::int64_t>();
  }
  std::int64_t positions(const at::Tensor& targets) override { return targets.numel(); }

  // The rows of the first embedding (nn.Embedding) in the module tree, if it has one.
  std::int64_t vocabulary() const override {
    for (const auto& module : scripted_.modules()) {
      const auto& name = module.type()->name();
      if (name && name->name() == "Embedding" && module.hasattr("weight")) {
        return module.attr("weight").toTensor().size(0);
      }
    }
    return 0;
  }

  void train(bool on) override {
    torch::nn::Module::train(on);
    scripted_.train(on);  // dropout and batch norm live in the scripted code
  }

 private:
  at::Tensor as_model_dtype(const at::Tensor& inputs) const {
    return input_dtype_ && inputs.is_floating_point() ? inputs.to(*input_dtype_) : inputs;
  }

  static at::Tensor tensor_result(const c10::IValue& result, const char* call) {
    if (!result.isTensor()) {
      throw ConfigError(
          str_cat("the module's ", call, " returned a ", result.tagKind(), ", not a tensor"));
    }
    return result.toTensor();
  }

  torch::jit::Module scripted_;
  std::string loss_;
  // The parameters' floating dtype, found once: parameters() walks the module tree, and braid
  // moves a model between devices, never between dtypes.
  std::optional<at::ScalarType> input_dtype_;
};

}  // namespace

const std::vector<std::string>& model_loss_names() {
  static const std::vector<std::string> names = {"cross_entropy", "mse", "output"};
  return names;
}

std::shared_ptr<Model> load_torchscript_model(const ModelConfig& config) {
  torch::jit::Module scripted;
  try {
    scripted = torch::jit::load(config.path);
  } catch (const std::exception& e) {
    throw ConfigError(str_cat("model.path: cannot load '", config.path,
                              "' as a TorchScript module (torch.jit.save of torch.jit.script or "
                              "torch.jit.trace): ",
                              first_line(e)));
  }
  auto model = std::make_shared<TorchScriptModel>(std::move(scripted), config.loss);
  if (model->parameters().empty()) {
    throw ConfigError(str_cat("model.path: '", config.path,
                              "' has no parameter that requires a gradient: nothing to train"));
  }
  return model;
}

void check_model_on_batch(Model& model, const ModelConfig& config, const at::Tensor& inputs,
                          const at::Tensor& targets) {
  const std::string where = str_cat("model.path '", config.path, "' with model.loss ", config.loss);
  at::Tensor loss;
  try {
    at::Tensor out = model.forward(inputs);
    if (config.loss == "cross_entropy" &&
        (out.dim() != targets.dim() + 1 ||
         out.sizes().slice(0, targets.dim()) != targets.sizes())) {
      throw ConfigError(str_cat("forward returned shape ", out.sizes(), " for targets of shape ",
                                targets.sizes(), "; cross_entropy needs [targets..., classes]"));
    }
    if (config.loss == "mse" && out.sizes() != targets.sizes()) {
      throw ConfigError(str_cat("forward returned shape ", out.sizes(), "; mse needs the targets' ",
                                targets.sizes()));
    }
    if (config.loss != "output" && !out.is_floating_point()) {
      throw ConfigError(str_cat("forward returned ", out.scalar_type(), ", not a floating type"));
    }
    loss = model.loss(out, targets);
  } catch (const ConfigError& e) {
    throw ConfigError(str_cat(where, ": ", e.what()));
  } catch (const std::exception& e) {
    throw ConfigError(str_cat(where, ": one forward pass on ", inputs.size(0),
                              " training samples failed: ", first_line(e)));
  }
  if (loss.numel() != 1 || !loss.is_floating_point()) {
    throw ConfigError(str_cat(where, ": the loss is ", loss.scalar_type(), " of shape ",
                              loss.sizes(), ", not a floating scalar"));
  }
}

}  // namespace braid
