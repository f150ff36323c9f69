// A Fashion-MNIST classifier trained in one process: the program of the PyTorch C++ example
// cpp/mnist (a small CNN, SGD with momentum, a pass over the test set after every epoch), fed
// Fashion-MNIST. mnist.cpp is the same program ported to braid; `diff mnist_plain.cpp mnist.cpp`
// is the port.
//
//   mnist_plain [--epochs 10] [--batch-size 64] [--seed 1] ...   (flags: mnist/settings.h)
//
// Ends with `result: loss=... accuracy=... checksum=...`: the test set's mean loss and accuracy
// after the last epoch and the float64 sum of all parameters.
#include <torch/torch.h>

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
           const Settings& settings, std::int64_t dataset_size) {
  net.train();
  std::int64_t batch_index = 0;
  for (auto& batch : loader) {
    if (batch_index == settings.steps_per_epoch) break;
    optimizer.zero_grad();
    torch::Tensor loss = torch::nll_loss(net.forward(batch.data), batch.target);
    loss.backward();
    optimizer.step();
    if (batch_index++ % settings.log_interval == 0) {
      std::printf("Train Epoch: %ld [%5ld/%5ld] Loss: %.4f\n", epoch,
                  batch_index * batch.data.size(0), dataset_size, loss.item<float>());
    }
  }
}

template <typename Loader>
TestResult test(Net& net, Loader& loader, std::int64_t dataset_size) {
  torch::NoGradGuard no_grad;
  net.eval();
  double loss_sum = 0, correct = 0;
  for (const auto& batch : loader) {
    const torch::Tensor output = net.forward(batch.data), targets = batch.target;
    loss_sum += torch::nll_loss(output, targets, {}, torch::Reduction::Sum).item<double>();
    correct += output.argmax(1).eq(targets).sum().item<double>();
  }
  return {loss_sum / dataset_size, correct / dataset_size};
}

int main(int argc, char** argv) {
  try {
    const Settings settings = parse_settings(argc, argv);
    torch::manual_seed(settings.seed);
    const auto data =
        examples::load_fashion_mnist(settings.data_dir, settings.train_limit, settings.test_limit);

    auto net = std::make_shared<Net>();
    torch::optim::SGD optimizer(net->parameters(),
                                torch::optim::SGDOptions(settings.lr).momentum(settings.momentum));

    // Shuffled as braid's sampler shuffles for one rank (a LibTorch RandomSampler draws another
    // order), so that the port at one rank reads the same batches and can be compared bitwise.
    auto train_loader = torch::data::make_data_loader(
        ImageDataset(data.train).map(Stack<>()),
        braid::DistributedSampler(data.train.size(), /*rank=*/0, /*world=*/1, settings.batch_size,
                                  settings.seed),
        torch::data::DataLoaderOptions(settings.batch_size));
    ImageDataset test_set(data.test);
    auto test_loader = torch::data::make_data_loader<torch::data::samplers::SequentialSampler>(
        test_set.map(Stack<>()), settings.test_batch_size);

    TestResult result;
    for (std::int64_t epoch = 1; epoch <= settings.epochs; ++epoch) {
      train(epoch, *net, *train_loader, optimizer, settings, data.train.size());
      result = test(*net, *test_loader, data.test.size());
      std::printf("Test set: Average loss: %.4f | Accuracy: %.3f\n", result.loss, result.accuracy);
    }
    std::printf("result: loss=%.17g accuracy=%.17g checksum=%.17g\n", result.loss, result.accuracy,
                examples::parameter_checksum({net.get()}));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mnist_plain: %s\n", e.what());
    return 1;
  }
}
