#include "runtime/models.h"

#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace braid {
namespace {

ModelConfig model_config(const std::string& name) {
  ModelConfig config;
  config.name = name;
  config.d_model = 32;
  config.layers = 2;
  config.heads = 4;
  config.context = 16;
  return config;
}

std::int64_t parameter_count(Model& model) {
  std::int64_t count = 0;
  for (const at::Tensor& p : model.parameters()) count += p.numel();
  return count;
}

std::vector<std::string> parameter_names(Model& model) {
  std::vector<std::string> names;
  for (const auto& item : model.named_parameters()) names.push_back(item.key());
  return names;
}

// A fixed batch with matching targets for each model.
std::pair<at::Tensor, at::Tensor> batch_for(const std::string& name) {
  if (name == "char_transformer") {
    const at::Tensor bytes = at::randint(256, {4, 17}, at::kLong);
    return {bytes.narrow(1, 0, 16), bytes.narrow(1, 1, 16)};
  }
  return {at::randn({8, 1, 28, 28}), at::randint(10, {8}, at::kLong)};
}

TEST(Models, OutputShapes) {
  at::manual_seed(1);
  for (const std::string name : {"mlp", "cnn"}) {
    auto model = make_model(model_config(name));
    EXPECT_EQ(model->forward(at::randn({8, 1, 28, 28})).sizes(), (std::vector<std::int64_t>{8, 10}))
        << name;
  }
  auto lm = make_model(model_config("char_transformer"));
  const at::Tensor tokens = at::randint(256, {3, 16}, at::kLong);
  EXPECT_EQ(lm->forward(tokens).sizes(), (std::vector<std::int64_t>{3, 16, 256}));
  // Shorter prompts than the context work too.
  EXPECT_EQ(lm->forward(tokens.narrow(1, 0, 5)).sizes(), (std::vector<std::int64_t>{3, 5, 256}));
}

TEST(Models, ParameterCounts) {
  auto mlp = make_model(model_config("mlp"));
  EXPECT_EQ(parameter_count(*mlp), 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10);
  auto cnn = make_model(model_config("cnn"));
  EXPECT_EQ(parameter_count(*cnn), 416 + 12832 + 15690);
  auto lm = make_model(model_config("char_transformer"));
  const std::int64_t d = 32, layers = 2, context = 16;
  const std::int64_t block = 2 * 2 * d                                 // two LayerNorms
                             + 4 * (d * d + d)                         // q, k, v, out
                             + (d * 4 * d + 4 * d) + (4 * d * d + d);  // MLP
  EXPECT_EQ(parameter_count(*lm), 256 * d + context * d + layers * block + 2 * d + d * 256 + 256);
}

TEST(Models, StableParameterNames) {
  auto mlp = make_model(model_config("mlp"));
  EXPECT_EQ(parameter_names(*mlp),
            (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                      "fc3.weight", "fc3.bias"}));
  auto a = make_model(model_config("char_transformer"));
  auto b = make_model(model_config("char_transformer"));
  const std::vector<std::string> names = parameter_names(*a);
  EXPECT_EQ(names, parameter_names(*b));
  EXPECT_EQ(names.front(), "tokens.weight");
  EXPECT_EQ(names[1], "positions.weight");
  EXPECT_EQ(names[2], "blocks.0.ln1.weight");
  EXPECT_EQ(names.back(), "head.bias");
  EXPECT_NE(std::find(names.begin(), names.end(), "blocks.1.q.weight"), names.end());
}

TEST(Models, OneSgdStepLowersTheLoss) {
  for (const std::string name : {"mlp", "cnn", "char_transformer"}) {
    at::manual_seed(3);
    auto model = make_model(model_config(name));
    const auto [inputs, targets] = batch_for(name);
    const at::Tensor loss = model->loss(model->forward(inputs), targets);
    ASSERT_EQ(loss.dim(), 0) << name;
    ASSERT_TRUE(std::isfinite(loss.item<double>())) << name;
    loss.backward();
    {
      at::NoGradGuard no_grad;
      for (at::Tensor& p : model->parameters()) p.sub_(p.grad() * 0.05);
    }
    const double after = model->loss(model->forward(inputs), targets).item<double>();
    EXPECT_LT(after, loss.item<double>()) << name;
  }
}

TEST(Models, CorrectAndPositions) {
  auto mlp = make_model(model_config("mlp"));
  at::Tensor logits = at::zeros({3, 10});
  logits[0][2] = 1;
  logits[1][5] = 1;
  logits[2][7] = 1;
  const at::Tensor labels = at::tensor(std::vector<std::int64_t>{2, 5, 0});
  EXPECT_EQ(mlp->correct(logits, labels), 2);
  EXPECT_EQ(mlp->positions(labels), 3);
  // Uniform logits: the loss is log(classes).
  EXPECT_NEAR(mlp->loss(at::zeros({3, 10}), labels).item<double>(), std::log(10.0), 1e-6);

  auto lm = make_model(model_config("char_transformer"));
  const at::Tensor next = at::randint(256, {2, 16}, at::kLong);
  at::Tensor text_logits = at::zeros({2, 16, 256});
  text_logits.scatter_(2, next.unsqueeze(2), 1.0);
  EXPECT_EQ(lm->correct(text_logits, next), 32);
  EXPECT_EQ(lm->positions(next), 32);
  EXPECT_NEAR(lm->loss(at::zeros({2, 16, 256}), next).item<double>(), std::log(256.0), 1e-6);
}

TEST(Models, TransformerIsCausal) {
  at::manual_seed(5);
  auto lm = make_model(model_config("char_transformer"));
  at::NoGradGuard no_grad;
  const at::Tensor tokens = at::randint(256, {2, 16}, at::kLong);
  at::Tensor changed = tokens.clone();
  changed.select(1, 10).add_(1).remainder_(256);
  const at::Tensor a = lm->forward(tokens), b = lm->forward(changed);
  EXPECT_TRUE(a.narrow(1, 0, 10).allclose(b.narrow(1, 0, 10)));
  EXPECT_FALSE(a.narrow(1, 10, 6).allclose(b.narrow(1, 10, 6)));
}

TEST(Models, ConfigErrors) {
  auto message = [](const ModelConfig& config) -> std::string {
    try {
      make_model(config);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "no ConfigError";
  };
  EXPECT_NE(message(model_config("resnet")).find("model.name"), std::string::npos);
  ModelConfig bad_heads = model_config("char_transformer");
  bad_heads.heads = 3;
  EXPECT_NE(message(bad_heads).find("model.heads"), std::string::npos);
}

}  // namespace
}  // namespace braid
