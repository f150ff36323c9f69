// A DCGAN trained on Fashion-MNIST in one process: the program of the PyTorch C++ example
// cpp/dcgan (a generator and a discriminator, an Adam optimizer each; every step trains the
// discriminator on real images then on fakes, then the generator through the discriminator;
// periodic checkpoints with sample images). dcgan.cpp is the same program ported to braid;
// `diff dcgan_plain.cpp dcgan.cpp` is the port.
//
//   dcgan_plain [--epochs 30] [--steps N] [--batch-size 64] [--seed 1] ...   (dcgan/settings.h)
//
// Ends with `result: d_loss=... g_loss=... checksum=...`: both losses averaged over all steps
// and the float64 sum of all parameters of both networks.
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>

#include "dcgan/models.h"
#include "dcgan/settings.h"
#include "support/checksum.h"
#include "support/fashion_mnist.h"

using examples::ImageDataset;
using torch::data::transforms::Stack;

struct Losses {
  double d = 0, g = 0;
};

Losses train_step(const torch::Tensor& real_images, DCGANGenerator& generator,
                  torch::nn::Sequential& discriminator, torch::optim::Optimizer& g_optimizer,
                  torch::optim::Optimizer& d_optimizer) {
  const auto n = real_images.size(0);
  // The discriminator on real images, their labels drawn from [0.8, 1] (one-sided label
  // smoothing keeps it from growing overconfident) ...
  discriminator->zero_grad();
  const auto real_labels = torch::empty(n).uniform_(0.8, 1.0);
  const auto d_loss_real =
      torch::binary_cross_entropy(discriminator->forward(real_images), real_labels);
  d_loss_real.backward();
  // ... then on as many fakes, detached: this phase trains the discriminator only.
  const auto fake_images = generator->forward(torch::randn({n, kNoiseSize, 1, 1}));
  auto fake_labels = torch::zeros(n);
  const auto d_loss_fake =
      torch::binary_cross_entropy(discriminator->forward(fake_images.detach()), fake_labels);
  d_loss_fake.backward();
  d_optimizer.step();

  // The generator, through the discriminator, with its fakes labelled real. The gradients this
  // leaves in the discriminator go with its next zero_grad().
  generator->zero_grad();
  fake_labels.fill_(1);
  const auto g_loss = torch::binary_cross_entropy(discriminator->forward(fake_images), fake_labels);
  g_loss.backward();
  g_optimizer.step();
  return {(d_loss_real + d_loss_fake).item<double>(), g_loss.item<double>()};
}

int main(int argc, char** argv) {
  try {
    const Settings settings = parse_settings(argc, argv);
    torch::manual_seed(settings.seed);
    const auto data = examples::load_fashion_mnist(settings.data_dir, settings.train_limit,
                                                   /*test_limit=*/1);

    DCGANGenerator generator(kNoiseSize);
    torch::nn::Sequential discriminator = make_discriminator();
    torch::optim::Adam g_optimizer(generator->parameters(), gan_adam(settings.lr, settings.beta1));
    torch::optim::Adam d_optimizer(discriminator->parameters(),
                                   gan_adam(settings.lr, settings.beta1));
    if (settings.restore) {
      load_checkpoint(settings.checkpoint_dir, generator, discriminator, g_optimizer, d_optimizer);
    }

    // Shuffled as braid's sampler shuffles for one rank (a LibTorch RandomSampler draws another
    // order), so that the port at one rank reads the same batches and can be compared bitwise.
    braid::DistributedSampler sampler(data.train.size(), /*rank=*/0, /*world=*/1,
                                      settings.batch_size, settings.seed);
    const std::int64_t batches_per_epoch = sampler.steps_per_epoch();
    auto loader = torch::data::make_data_loader(
        ImageDataset(examples::to_tanh_range(data.train.inputs), data.train.targets).map(Stack<>()),
        sampler, torch::data::DataLoaderOptions(settings.batch_size));

    Losses total;
    std::int64_t step = 0, checkpoint_counter = 1;
    for (std::int64_t epoch = 1; epoch <= settings.epochs && step < settings.steps; ++epoch) {
      std::int64_t batch_index = 0;
      for (const auto& batch : *loader) {
        const Losses losses =
            train_step(batch.data, generator, discriminator, g_optimizer, d_optimizer);
        total.d += losses.d;
        total.g += losses.g;
        ++batch_index;
        ++step;
        if (batch_index % settings.log_interval == 0) {
          std::printf("[%2ld/%2ld][%3ld/%3ld] D_loss: %.4f | G_loss: %.4f\n", epoch,
                      settings.epochs, batch_index, batches_per_epoch, losses.d, losses.g);
        }
        if (settings.checkpoint_every > 0 && step % settings.checkpoint_every == 0) {
          save_checkpoint(settings.checkpoint_dir, generator, discriminator, g_optimizer,
                          d_optimizer);
          save_samples(settings.checkpoint_dir, generator, settings.samples_per_checkpoint,
                       checkpoint_counter);
          std::printf("-> checkpoint %ld\n", checkpoint_counter++);
        }
        if (step == settings.steps) break;
      }
    }
    const auto steps = std::max<std::int64_t>(step, 1);  // --epochs 0: no step, losses 0
    std::printf("result: d_loss=%.17g g_loss=%.17g checksum=%.17g\n", total.d / steps,
                total.g / steps,
                examples::parameter_checksum({generator.get(), discriminator.get()}));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dcgan_plain: %s\n", e.what());
    return 1;
  }
}
