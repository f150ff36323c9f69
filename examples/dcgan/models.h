// The two networks of the PyTorch C++ example cpp/dcgan for 28 x 28 grey images, their Adam
// settings, and the checkpoint files (upstream's names) that save and restore them.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>

constexpr std::int64_t kNoiseSize = 100;

// Noise [N, kNoiseSize, 1, 1] to images [N, 1, 28, 28] in [-1, 1]: transposed convolutions grow
// the side 1 -> 4 -> 7 -> 14 -> 28, with batch normalization and ReLU between them.
struct DCGANGeneratorImpl : torch::nn::Module {
  explicit DCGANGeneratorImpl(std::int64_t noise_size)
      : conv1(up(noise_size, 256, 4, 1, 0)),
        conv2(up(256, 128, 3, 2, 1)),
        conv3(up(128, 64, 4, 2, 1)),
        conv4(up(64, 1, 4, 2, 1)) {
    register_module("conv1", conv1);
    register_module("conv2", conv2);
    register_module("conv3", conv3);
    register_module("conv4", conv4);
    register_module("batch_norm1", batch_norm1);
    register_module("batch_norm2", batch_norm2);
    register_module("batch_norm3", batch_norm3);
  }

  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(batch_norm1(conv1(x)));
    x = torch::relu(batch_norm2(conv2(x)));
    x = torch::relu(batch_norm3(conv3(x)));
    return torch::tanh(conv4(x));
  }

  static torch::nn::ConvTranspose2dOptions up(std::int64_t in, std::int64_t out,
                                              std::int64_t kernel, std::int64_t stride,
                                              std::int64_t padding) {
    return torch::nn::ConvTranspose2dOptions(in, out, kernel)
        .stride(stride)
        .padding(padding)
        .bias(false);
  }

  torch::nn::ConvTranspose2d conv1, conv2, conv3, conv4;
  torch::nn::BatchNorm2d batch_norm1{256}, batch_norm2{128}, batch_norm3{64};
};
TORCH_MODULE(DCGANGenerator);

// Images [N, 1, 28, 28] to the probability [N] that each is real: strided convolutions shrink
// the side 28 -> 14 -> 7 -> 3 -> 1, with leaky ReLU and batch normalization between them.
inline torch::nn::Sequential make_discriminator() {
  namespace nn = torch::nn;
  auto down = [](std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                 std::int64_t padding) {
    return nn::Conv2d(
        nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
  };
  const auto leaky = nn::LeakyReLUOptions().negative_slope(0.2);
  return nn::Sequential(down(1, 64, 4, 2, 1), nn::LeakyReLU(leaky),                           //
                        down(64, 128, 4, 2, 1), nn::BatchNorm2d(128), nn::LeakyReLU(leaky),   //
                        down(128, 256, 4, 2, 1), nn::BatchNorm2d(256), nn::LeakyReLU(leaky),  //
                        down(256, 1, 3, 1, 0), nn::Sigmoid(),
                        nn::Flatten(nn::FlattenOptions().start_dim(0)));
}

// The DCGAN paper's Adam: learning rate 2e-4, beta1 0.5.
inline torch::optim::AdamOptions gan_adam(double lr, double beta1) {
  return torch::optim::AdamOptions(lr).betas({beta1, 0.999});
}

// Models and optimizers in `dir`, under the upstream example's file names.
inline std::string checkpoint_file(const std::string& dir, const std::string& name) {
  return dir + "/" + name + "-checkpoint.pt";
}

inline void save_checkpoint(const std::string& dir, DCGANGenerator& generator,
                            torch::nn::Sequential& discriminator, torch::optim::Optimizer& g_opt,
                            torch::optim::Optimizer& d_opt) {
  std::filesystem::create_directories(dir);
  torch::save(generator, checkpoint_file(dir, "generator"));
  torch::save(g_opt, checkpoint_file(dir, "generator-optimizer"));
  torch::save(discriminator, checkpoint_file(dir, "discriminator"));
  torch::save(d_opt, checkpoint_file(dir, "discriminator-optimizer"));
}

inline void load_checkpoint(const std::string& dir, DCGANGenerator& generator,
                            torch::nn::Sequential& discriminator, torch::optim::Optimizer& g_opt,
                            torch::optim::Optimizer& d_opt) {
  torch::load(generator, checkpoint_file(dir, "generator"));
  torch::load(g_opt, checkpoint_file(dir, "generator-optimizer"));
  torch::load(discriminator, checkpoint_file(dir, "discriminator"));
  torch::load(d_opt, checkpoint_file(dir, "discriminator-optimizer"));
}

// `count` generated images rescaled to [0, 1], saved as dcgan-sample-<index>.pt. In eval mode
// (the running statistics normalize), so sampling does not move those statistics.
inline void save_samples(const std::string& dir, DCGANGenerator& generator, std::int64_t count,
                         std::int64_t index) {
  torch::NoGradGuard no_grad;
  generator->eval();
  const auto samples = generator->forward(torch::randn({count, kNoiseSize, 1, 1}));
  generator->train();
  torch::save((samples + 1.0) / 2.0, dir + "/dcgan-sample-" + std::to_string(index) + ".pt");
}
