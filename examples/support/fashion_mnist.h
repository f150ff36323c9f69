// Fashion-MNIST for the example programs, as a torch::data dataset so that they feed their
// loops through LibTorch's DataLoader as the upstream programs do. Debian's
// dataset-fashion-mnist ships gzip idx files, which LibTorch's MNIST reader cannot open, so
// braid::load_data reads them: images float32 [N, 1, 28, 28] normalized with Fashion-MNIST's
// mean and standard deviation (runtime/data.h), labels int64 [N].
#pragma once

#include <braid/braid.h>
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace examples {

inline const char* const kFashionMnistDir = braid::kFashionMnistPath;

// `train_limit`, `test_limit` > 0 keep only the first that many samples of a split (short runs).
inline braid::DataSplits load_fashion_mnist(const std::string& dir, std::int64_t train_limit,
                                            std::int64_t test_limit) {
  braid::DataConfig config;
  config.path = dir;
  config.train_limit = train_limit;
  config.test_limit = test_limit;
  return braid::load_data(config, braid::ModelConfig{});
}

// Images rescaled to [-1, 1], the range of a generator that ends in tanh: braid's normalization
// undone (runtime/data.h) back to [0, 1], then stretched.
inline torch::Tensor to_tanh_range(const torch::Tensor& normalized) {
  return (normalized * braid::kFashionStd + braid::kFashionMean) * 2 - 1;
}

// (image, label) pairs over tensors already in memory.
class ImageDataset : public torch::data::datasets::Dataset<ImageDataset> {
 public:
  ImageDataset(torch::Tensor images, torch::Tensor labels)
      : images_(std::move(images)), labels_(std::move(labels)) {}
  explicit ImageDataset(const braid::Dataset& split) : ImageDataset(split.inputs, split.targets) {}

  torch::data::Example<> get(std::size_t index) override {
    const auto i = static_cast<std::int64_t>(index);
    return {images_[i], labels_[i]};
  }
  torch::optional<std::size_t> size() const override {
    return static_cast<std::size_t>(images_.size(0));
  }

 private:
  torch::Tensor images_, labels_;
};

}  // namespace examples
