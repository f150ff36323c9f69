// A DCGAN trained on Fashion-MNIST data-parallel with braid: dcgan_plain.cpp (the PyTorch C++
// example cpp/dcgan) ported; `diff dcgan_plain.cpp dcgan.cpp` is the port, and README.md says
// why each changed line changed. Each network has its own DataParallel and optimizer; every
// rank trains on its share of each global batch of P x --batch-size real images, with fakes of
// its own.
//
//   mpirun -np 2 dcgan [--epochs 30] [--steps N] [--batch-size 64] [--seed 1] ...
//                                                              (flags: dcgan/settings.h)
//
// Rank 0 ends with `result: d_loss=... g_loss=... checksum=...`: both losses averaged over all
// steps and ranks and the float64 sum of all parameters of both networks. With more than one
// rank it first prints each network's traffic per step beside its gradient's size: one exchange
// per step moves about one gradient per rank at 2 ranks, each extra exchange as much again.
// --check-replicas: exit 1 unless every rank ends with bitwise the same parameters.
#include <braid/braid.h>
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
                  torch::optim::Optimizer& d_optimizer, braid::DataParallel& d_parallel) {
  const auto n = real_images.size(0);
  // The discriminator on real images, their labels drawn from [0.8, 1] (one-sided label
  // smoothing keeps it from growing overconfident) ...
  discriminator->zero_grad();
  const auto real_labels = torch::empty(n).uniform_(0.8, 1.0);
  const auto d_loss_real =
      torch::binary_cross_entropy(discriminator->forward(real_images), real_labels);
  {
    // Not exchanged yet: the fakes' backward pass adds to the same .grad, and braid would send
    // a bucket sent now again with the sum. The next backward pass sends the sum, once.
    auto accumulate = d_parallel.no_sync();
    d_loss_real.backward();
  }
  // ... then on as many fakes, detached: this phase trains the discriminator only.
  const auto fake_images = generator->forward(torch::randn({n, kNoiseSize, 1, 1}));
  auto fake_labels = torch::zeros(n);
  const auto d_loss_fake =
      torch::binary_cross_entropy(discriminator->forward(fake_images.detach()), fake_labels);
  d_loss_fake.backward();
  d_optimizer.step();

  // The generator, through the discriminator, with its fakes labelled real. The discriminator
  // is frozen for it: the gradients this would leave in its parameters go with its next
  // zero_grad(), yet braid would exchange them (it sends whatever a backward pass adds to
  // .grad), once more per step. Its input gradient, all the generator needs, is the same.
  // Frozen before the forward pass: a graph recorded with trainable parameters still runs
  // their gradient hooks in backward, and braid's exchange starts from those hooks.
  generator->zero_grad();
  fake_labels.fill_(1);
  for (auto& p : discriminator->parameters()) p.requires_grad_(false);
  const auto g_loss = torch::binary_cross_entropy(discriminator->forward(fake_images), fake_labels);
  g_loss.backward();
  for (auto& p : discriminator->parameters()) p.requires_grad_(true);
  g_optimizer.step();
  return {(d_loss_real + d_loss_fake).item<double>(), g_loss.item<double>()};
}

// Bytes this rank moved for `parallel` so far: sent, and read from node peers' shared memory.
double traffic_mb(const braid::DataParallel& parallel) {
  const braid::SyncStats stats = parallel.stats();
  return (stats.bytes_sent + stats.bytes_shared) / 1e6;
}

double gradient_mb(const torch::nn::Module& module) {
  double bytes = 0;
  for (const auto& p : module.parameters()) bytes += p.nbytes();
  return bytes / 1e6;
}

int main(int argc, char** argv) {
  braid::World world(&argc, &argv);  // MPI up: this process is rank world.rank() of world.size()
  try {
    const Settings settings = parse_settings(argc, argv);
    // A seed per rank: the generator's noise (and the label smoothing) come from this
    // generator, and ranks with one seed would all make the same fakes, so a global batch of P
    // shards would hold P copies of each fake. The initial weights differ too, but DataParallel
    // gives every rank rank 0's.
    torch::manual_seed(settings.seed + world.rank());
    // The ranks share the machine's cores: each with LibTorch's default (a thread per core)
    // would run P threads per core, which slows all of them.
    torch::set_num_threads(std::max(1, torch::get_num_threads() / world.size()));
    const auto data = examples::load_fashion_mnist(settings.data_dir, settings.train_limit,
                                                   /*test_limit=*/1);

    DCGANGenerator generator(kNoiseSize);
    torch::nn::Sequential discriminator = make_discriminator();
    // Collective: every rank starts from rank 0's weights. The names go into error messages.
    braid::DataParallelOptions g_options, d_options;
    g_options.name = "generator";
    d_options.name = "discriminator";
    braid::DataParallel g_parallel(world, *generator, g_options);
    braid::DataParallel d_parallel(world, *discriminator, d_options);
    // Their step() averages the gradients over the ranks, then steps as Adam.
    braid::DistributedOptimizer<torch::optim::Adam> g_optimizer(
        g_parallel, generator->parameters(), gan_adam(settings.lr, settings.beta1));
    braid::DistributedOptimizer<torch::optim::Adam> d_optimizer(
        d_parallel, discriminator->parameters(), gan_adam(settings.lr, settings.beta1));
    if (settings.restore) {
      // Every rank reads what rank 0 saved: the optimizers' state must agree on all ranks too.
      load_checkpoint(settings.checkpoint_dir, generator, discriminator, g_optimizer, d_optimizer);
    }

    // Rank r reads the r-th block of --batch-size images of every global batch, reshuffled
    // every epoch from the seed, which must be the same on every rank.
    braid::DistributedSampler sampler(data.train.size(), world, settings.batch_size, settings.seed);
    const std::int64_t batches_per_epoch = sampler.steps_per_epoch();
    auto loader = torch::data::make_data_loader(
        ImageDataset(examples::to_tanh_range(data.train.inputs), data.train.targets).map(Stack<>()),
        sampler, torch::data::DataLoaderOptions(settings.batch_size));

    const double g_traffic_mb = traffic_mb(g_parallel), d_traffic_mb = traffic_mb(d_parallel);
    Losses total;
    std::int64_t step = 0, checkpoint_counter = 1;
    for (std::int64_t epoch = 1; epoch <= settings.epochs && step < settings.steps; ++epoch) {
      std::int64_t batch_index = 0;
      for (const auto& batch : *loader) {
        const Losses losses =
            train_step(batch.data, generator, discriminator, g_optimizer, d_optimizer, d_parallel);
        total.d += losses.d;
        total.g += losses.g;
        ++batch_index;
        ++step;
        // One rank logs, with its own shard's losses, and saves: the replicas are identical.
        if (batch_index % settings.log_interval == 0 && world.is_main()) {
          std::printf("[%2ld/%2ld][%3ld/%3ld] D_loss: %.4f | G_loss: %.4f\n", epoch,
                      settings.epochs, batch_index, batches_per_epoch, losses.d, losses.g);
        }
        if (settings.checkpoint_every > 0 && step % settings.checkpoint_every == 0 &&
            world.is_main()) {
          save_checkpoint(settings.checkpoint_dir, generator, discriminator, g_optimizer,
                          d_optimizer);
          save_samples(settings.checkpoint_dir, generator, settings.samples_per_checkpoint,
                       checkpoint_counter);
          std::printf("-> checkpoint %ld\n", checkpoint_counter++);
        }
        if (step == settings.steps) break;
      }
    }
    // Each rank's losses are over its own shard: their mean over the ranks is the global batch's.
    auto sums = torch::tensor({total.d, total.g}, torch::kDouble);
    d_parallel.communicator().allreduce(braid::as_buffer(sums), braid::ReduceOp::kSum).wait();
    // With no_sync() and the frozen discriminator, one exchange of each gradient per step.
    if (world.is_main() && world.size() > 1 && step > 0) {
      std::printf(
          "traffic per step: generator %.3f MB (gradient %.3f MB)"
          " discriminator %.3f MB (gradient %.3f MB)\n",
          (traffic_mb(g_parallel) - g_traffic_mb) / step, gradient_mb(*generator),
          (traffic_mb(d_parallel) - d_traffic_mb) / step, gradient_mb(*discriminator));
    }
    const auto steps = std::max<std::int64_t>(step, 1);  // --epochs 0: no step, losses 0
    if (world.is_main()) {
      std::printf("result: d_loss=%.17g g_loss=%.17g checksum=%.17g\n",
                  sums[0].item<double>() / world.size() / steps,
                  sums[1].item<double>() / world.size() / steps,
                  examples::parameter_checksum({generator.get(), discriminator.get()}));
    }
    if (settings.check_replicas &&
        !examples::replicas_identical(world, {generator.get(), discriminator.get()})) {
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dcgan: rank %d: %s\n", world.rank(), e.what());
    braid::World::abort(1);  // peers may be waiting in a collective
  }
}
