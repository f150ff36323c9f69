// model.name: torchscript: a model defined in Python, scripted or traced and saved there
// (torch.jit.save), trained by braid like a built-in one.
//
// The module is loaded with torch::jit::load. Its parameters and buffers are the Model's own,
// registered under the same dotted names Python gives them (a mirror of the submodule tree, so
// named_parameters() says "blocks.0.ln1.weight" and model.pt loads into the Python module with
// load_state_dict): the tensors are shared, so what the optimizer changes is what the scripted
// forward computes with. Parameters that do not require a gradient are kept as buffers (in step
// across ranks and in model.pt, never trained). Floating inputs are cast to the parameters'
// floating dtype (Fashion-MNIST images are float32; a model converted to float64 gets float64).
//
// model.loss says what forward's result is: cross_entropy (logits [..., classes] against integer
// targets [...], so [B, T, V] against [B, T] for a language model; accuracy counts argmax hits),
// mse (an output of the targets' shape; no accuracy), or output (forward(inputs, targets) returns
// the scalar loss itself; no accuracy).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/config.h"
#include "runtime/models.h"

namespace braid {

// The values model.loss accepts.
const std::vector<std::string>& model_loss_names();

// Throws ConfigError naming model.path when the file cannot be loaded or the module has no
// trainable parameter.
std::shared_ptr<Model> load_torchscript_model(const ModelConfig& config);

// One forward pass and loss on `inputs`/`targets` (a couple of samples), so that a module that
// returns the wrong type, shape or dtype for model.loss is refused before training: throws
// ConfigError naming model.path, model.loss and what was wrong.
void check_model_on_batch(Model& model, const ModelConfig& config, const at::Tensor& inputs,
                          const at::Tensor& targets);

}  // namespace braid
