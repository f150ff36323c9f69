// Helpers shared by the multi-rank training tests: a small Fashion-MNIST subset, seeded models
// and a float64 comparison of two models' parameters.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <string>

#include "runtime/data.h"
#include "runtime/models.h"

namespace braid::test {

// The first 2048 training samples (loaded once per process).
inline const DataSplits& fashion() {
  static DataSplits data = [] {
    DataConfig config;
    config.path = "/usr/share/datasets/fashion-mnist";
    config.train_limit = 2048;
    config.test_limit = 1;
    return load_data(config, ModelConfig{});
  }();
  return data;
}

// The same initial weights on every call and rank.
inline std::shared_ptr<Model> seeded_model(const std::string& name, c10::ScalarType dtype,
                                           std::int64_t hidden = 64) {
  torch::manual_seed(1234);
  ModelConfig config;
  config.name = name;
  config.hidden = hidden;
  auto model = make_model(config);
  model->to(dtype);
  return model;
}

// One forward and backward of `model` on the samples `idx` of fashion(); returns the loss.
inline double backward_on(Model& model, const at::Tensor& idx) {
  const Dataset& train = fashion().train;
  const auto dtype = model.parameters().front().scalar_type();
  at::Tensor loss = model.loss(model.forward(train.inputs.index_select(0, idx).to(dtype)),
                               train.targets.index_select(0, idx));
  loss.backward();
  return loss.item<double>();
}

// Largest |a - b| / (1 + |b|) over all parameters, in float64.
inline double max_relative_difference(Model& a, Model& b) {
  double worst = 0;
  auto theirs = b.named_parameters();
  for (const auto& item : a.named_parameters()) {
    at::Tensor x = item.value().detach().to(torch::kFloat64);
    at::Tensor y = theirs[item.key()].detach().to(torch::kFloat64);
    worst = std::max(worst, ((x - y).abs() / (1 + y.abs())).max().item<double>());
  }
  return worst;
}

}  // namespace braid::test
