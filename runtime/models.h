// The model zoo. Every model maps a batch of inputs to logits and owns its loss:
//  - mlp: 784-hidden-hidden-10 with ReLU (input [N, 1, 28, 28] flattened).
//  - cnn: conv5x5(1->16, pad 2)-ReLU-maxpool2 -> conv5x5(16->32, pad 2)-ReLU-maxpool2 ->
//    linear(1568->10); the shapes of the PyTorch baseline in bench/.
//  - char_transformer: a small decoder-only byte-level language model (token and learned
//    position embeddings, `layers` pre-norm blocks of causal multi-head self-attention and a
//    4x MLP, final LayerNorm, linear head to 256 logits).
//  - torchscript: a module saved from Python with torch.jit.save (model.path, model.loss;
//    runtime/torchscript_model.h), on any data set.
// Parameters are initialized from the torch generator; the runtime seeds it from run.seed and
// broadcasts rank 0's parameters anyway.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace braid {

class Model : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& inputs) = 0;
  // Mean loss of `logits` against `targets` (cross entropy over classes or next bytes).
  virtual at::Tensor loss(const at::Tensor& logits, const at::Tensor& targets) = 0;
  // Number of correct predictions (argmax), counted over all predicted positions.
  virtual std::int64_t correct(const at::Tensor& logits, const at::Tensor& targets) = 0;
  // Number of predicted positions in a batch (samples, or samples * context for text).
  virtual std::int64_t positions(const at::Tensor& targets) = 0;
  // The number of token ids the model embeds, when it knows it (0: unknown).
  virtual std::int64_t vocabulary() const { return 0; }
};

// The names make_model builds: mlp, cnn, char_transformer, torchscript.
const std::vector<std::string>& model_names();

// Throws ConfigError naming model.name for an unknown model.
std::shared_ptr<Model> make_model(const ModelConfig& config);

}  // namespace braid
