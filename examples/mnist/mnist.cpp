// A Fashion-MNIST classifier trained data-parallel with braid: mnist_plain.cpp (the PyTorch C++
// example cpp/mnist) ported; `diff mnist_plain.cpp mnist.cpp` is the port, and README.md says
// why each changed line changed. Every rank trains on its share of each global batch of
// P x --batch-size samples and tests on its share of the test set.
//
//   mpirun -np 2 mnist [--epochs 10] [--batch-size 64] [--seed 1] ...   (flags: mnist/settings.h)
//
// Rank 0 ends with `result: loss=... accuracy=... checksum=...`: the test set's mean loss and
// accuracy after the last epoch and the float64 sum of all parameters. --check-replicas: exit 1
// unless every rank ends with bitwise the same parameters.
#include <braid/braid.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>

#include "mnist/net.h"
#include "mnist/settings.h"
#include "support/checksum.h"
#include "support/fashion_mnist.h"

using examples::ImageDataset;
using torch::data::transforms::Stack;

struct TestResult {
  double loss = 0, accuracy = 0;
};

template <typename Loader>
void train(std::int64_t epoch, Net& net, Loader& loader, torch::optim::Optimizer& optimizer,
           const Settings& settings, std::int64_t dataset_size, const braid::World& world) {
  net.train();
  std::int64_t batch_index = 0;
  for (auto& batch : loader) {
    if (batch_index == settings.steps_per_epoch) break;
    optimizer.zero_grad();
    torch::Tensor loss = torch::nll_loss(net.forward(batch.data), batch.target);
    loss.backward();
    optimizer.step();
    // One rank logs, with its own shard's loss; a global batch is P shards.
    if (batch_index++ % settings.log_interval == 0 && world.is_main()) {
      std::printf("Train Epoch: %ld [%5ld/%5ld] Loss: %.4f\n", epoch,
                  batch_index * world.size() * batch.data.size(0), dataset_size,
                  loss.item<float>());
    }
  }
}

template <typename Loader>
TestResult test(Net& net, Loader& loader, std::int64_t dataset_size, braid::Communicator& comm) {
  torch::NoGradGuard no_grad;
  net.eval();
  double loss_sum = 0, correct = 0;
  for (const auto& batch : loader) {
    const torch::Tensor output = net.forward(batch.data), targets = batch.target;
    loss_sum += torch::nll_loss(output, targets, {}, torch::Reduction::Sum).item<double>();
    correct += output.argmax(1).eq(targets).sum().item<double>();
  }
  // Each rank tested its shard: the sums over the ranks are the whole test set's.
  auto sums = torch::tensor({loss_sum, correct}, torch::kDouble);
  comm.allreduce(braid::as_buffer(sums), braid::ReduceOp::kSum).wait();
  return {sums[0].item<double>() / dataset_size, sums[1].item<double>() / dataset_size};
}

int main(int argc, char** argv) {
  braid::World world(&argc, &argv);  // MPI up: this process is rank world.rank() of world.size()
  try {
    const Settings settings = parse_settings(argc, argv);
    // A seed per rank: dropout draws its masks from this generator, and ranks must not drop the
    // same units for different samples (one process does not, within one big batch). The
    // initial weights differ too, but DataParallel gives every rank rank 0's.
    torch::manual_seed(settings.seed + world.rank());
    // The ranks share the machine's cores: each with LibTorch's default (a thread per core)
    // would run P threads per core, which slows all of them.
    torch::set_num_threads(std::max(1, torch::get_num_threads() / world.size()));
    const auto data =
        examples::load_fashion_mnist(settings.data_dir, settings.train_limit, settings.test_limit);

    auto net = std::make_shared<Net>();
    braid::DataParallel dp(world, *net);  // collective: every rank starts from rank 0's weights
    // Its step() averages the gradients over the ranks, then steps as SGD.
    braid::DistributedOptimizer<torch::optim::SGD> optimizer(
        dp, net->parameters(), torch::optim::SGDOptions(settings.lr).momentum(settings.momentum));

    // Rank r reads the r-th block of --batch-size samples of every global batch, reshuffled
    // every epoch from the seed, which must be the same on every rank.
    auto train_loader = torch::data::make_data_loader(
        ImageDataset(data.train).map(Stack<>()),
        braid::DistributedSampler(data.train.size(), world, settings.batch_size, settings.seed),
        torch::data::DataLoaderOptions(settings.batch_size));
    const auto shard = braid::eval_indices(data.test.size(), world.rank(), world.size());
    ImageDataset test_set(data.test.inputs.index_select(0, shard),
                          data.test.targets.index_select(0, shard));
    auto test_loader = torch::data::make_data_loader<torch::data::samplers::SequentialSampler>(
        test_set.map(Stack<>()), settings.test_batch_size);

    TestResult result;
    for (std::int64_t epoch = 1; epoch <= settings.epochs; ++epoch) {
      train(epoch, *net, *train_loader, optimizer, settings, data.train.size(), world);
      result = test(*net, *test_loader, data.test.size(), dp.communicator());
      if (world.is_main()) {
        std::printf("Test set: Average loss: %.4f | Accuracy: %.3f\n", result.loss,
                    result.accuracy);
      }
    }
    if (world.is_main()) {
      std::printf("result: loss=%.17g accuracy=%.17g checksum=%.17g\n", result.loss,
                  result.accuracy, examples::parameter_checksum({net.get()}));
    }
    if (settings.check_replicas && !examples::replicas_identical(world, {net.get()})) return 1;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mnist: rank %d: %s\n", world.rank(), e.what());
    braid::World::abort(1);  // peers may be waiting in a collective
  }
}
