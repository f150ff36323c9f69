#include "runtime/models.h"

// The module headers we use, not <torch/torch.h>: it costs ~30 s of compile time per file.
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/torchscript_model.h"

namespace braid {
namespace {

// Loss and accuracy over the last dimension of the logits, every other dimension being a
// predicted position: [N, classes] for images, [N, context, 256] for text.
class Classifier : public Model {
 public:
  at::Tensor loss(const at::Tensor& logits, const at::Tensor& targets) override {
    return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
  }
  std::int64_t correct(const at::Tensor& logits, const at::Tensor& targets) override {
    return logits.argmax(-1).eq(targets).sum().item<std::int64_t>();
  }
  std::int64_t positions(const at::Tensor& targets) override { return targets.numel(); }
};

class Mlp : public Classifier {
 public:
  explicit Mlp(std::int64_t hidden)
      : fc1_(register_module("fc1", torch::nn::Linear(784, hidden))),
        fc2_(register_module("fc2", torch::nn::Linear(hidden, hidden))),
        fc3_(register_module("fc3", torch::nn::Linear(hidden, 10))) {}

  at::Tensor forward(const at::Tensor& inputs) override {
    at::Tensor x = fc1_(inputs.flatten(1)).relu();
    return fc3_(fc2_(x).relu());
  }

 private:
  torch::nn::Linear fc1_, fc2_, fc3_;
};

class Cnn : public Classifier {
 public:
  Cnn()
      : conv1_(register_module("conv1",
                               torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 16, 5).padding(2)))),
        conv2_(register_module("conv2",
                               torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 5).padding(2)))),
        fc_(register_module("fc", torch::nn::Linear(32 * 7 * 7, 10))) {}

  at::Tensor forward(const at::Tensor& inputs) override {
    at::Tensor x = at::max_pool2d(conv1_(inputs).relu(), {2, 2});
    x = at::max_pool2d(conv2_(x).relu(), {2, 2});
    return fc_(x.flatten(1));
  }

 private:
  torch::nn::Conv2d conv1_, conv2_;
  torch::nn::Linear fc_;
};

// Pre-norm block: x + attention(ln1(x)), then x + mlp(ln2(x)). Attention is written out with
// plain linear layers so parameter names and the causal mask do not depend on
// torch::nn::MultiheadAttention, whose C++ interface differs across LibTorch versions.
class Block : public torch::nn::Module {
 public:
  Block(std::int64_t d_model, std::int64_t heads)
      : heads_(heads),
        ln1_(register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})))),
        q_(register_module("q", torch::nn::Linear(d_model, d_model))),
        k_(register_module("k", torch::nn::Linear(d_model, d_model))),
        v_(register_module("v", torch::nn::Linear(d_model, d_model))),
        out_(register_module("out", torch::nn::Linear(d_model, d_model))),
        ln2_(register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})))),
        fc1_(register_module("fc1", torch::nn::Linear(d_model, 4 * d_model))),
        fc2_(register_module("fc2", torch::nn::Linear(4 * d_model, d_model))) {}

  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = x + attention(ln1_(x));
    return y + fc2_(at::gelu(fc1_(ln2_(y))));
  }

 private:
  at::Tensor attention(const at::Tensor& x) {
    const std::int64_t batch = x.size(0), time = x.size(1), d_model = x.size(2);
    const std::int64_t head_dim = d_model / heads_;
    auto split = [&](const at::Tensor& t) {  // [B, T, D] -> [B, H, T, D/H]
      return t.view({batch, time, heads_, head_dim}).transpose(1, 2);
    };
    const at::Tensor q = split(q_(x)), k = split(k_(x)), v = split(v_(x));
    at::Tensor scores = q.matmul(k.transpose(-2, -1)) / std::sqrt(static_cast<double>(head_dim));
    // Position t may attend to positions <= t only.
    const at::Tensor future = at::ones({time, time}, x.options().dtype(at::kBool)).triu(1);
    scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
    at::Tensor mixed = scores.softmax(-1).matmul(v);
    return out_(mixed.transpose(1, 2).reshape({batch, time, d_model}));
  }

  std::int64_t heads_;
  torch::nn::LayerNorm ln1_;
  torch::nn::Linear q_, k_, v_, out_;
  torch::nn::LayerNorm ln2_;
  torch::nn::Linear fc1_, fc2_;
};

class CharTransformer : public Classifier {
 public:
  std::int64_t vocabulary() const override { return 256; }
  explicit CharTransformer(const ModelConfig& config)
      : tokens_(register_module("tokens", torch::nn::Embedding(256, config.d_model))),
        positions_(
            register_module("positions", torch::nn::Embedding(config.context, config.d_model))),
        blocks_(register_module("blocks", torch::nn::ModuleList())) {
    for (std::int64_t i = 0; i < config.layers; ++i) {
      typed_blocks_.push_back(std::make_shared<Block>(config.d_model, config.heads));
      blocks_->push_back(typed_blocks_.back());
    }
    ln_f_ = register_module("ln_f",
                            torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model})));
    head_ = register_module("head", torch::nn::Linear(config.d_model, 256));
  }

  // inputs: int64 [N, T] with T <= context; logits [N, T, 256].
  at::Tensor forward(const at::Tensor& inputs) override {
    const at::Tensor where = at::arange(inputs.size(1), inputs.options().dtype(at::kLong));
    at::Tensor x = tokens_(inputs) + positions_(where);
    for (const auto& block : typed_blocks_) x = block->forward(x);
    return head_(ln_f_(x));
  }

 private:
  torch::nn::Embedding tokens_, positions_;
  torch::nn::ModuleList blocks_;
  std::vector<std::shared_ptr<Block>> typed_blocks_;
  torch::nn::LayerNorm ln_f_{nullptr};
  torch::nn::Linear head_{nullptr};
};

void require_positive(std::int64_t value, const char* key) {
  if (value <= 0) throw ConfigError(str_cat(key, " must be > 0, got ", value));
}

}  // namespace

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names = {"mlp", "cnn", "char_transformer", "torchscript"};
  return names;
}

std::shared_ptr<Model> make_model(const ModelConfig& config) {
  if (config.name == "mlp") {
    require_positive(config.hidden, "model.hidden");
    return std::make_shared<Mlp>(config.hidden);
  }
  if (config.name == "cnn") return std::make_shared<Cnn>();
  if (config.name == "char_transformer") {
    require_positive(config.d_model, "model.d_model");
    require_positive(config.layers, "model.layers");
    require_positive(config.heads, "model.heads");
    require_positive(config.context, "model.context");
    if (config.d_model % config.heads != 0) {
      throw ConfigError(str_cat("model.heads (", config.heads, ") must divide model.d_model (",
                                config.d_model, ")"));
    }
    return std::make_shared<CharTransformer>(config);
  }
  if (config.name == "torchscript") return load_torchscript_model(config);
  throw ConfigError(
      str_cat("model.name: unknown model '", config.name, "' (valid: ", join(model_names()), ")"));
}

}  // namespace braid
