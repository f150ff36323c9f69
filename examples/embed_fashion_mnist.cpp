// Embedding braid in your own LibTorch training loop: your model, your optimizer, your loop;
// braid averages the gradients across ranks while backward runs.
//
//   mpirun -np 2 ./embed_fashion_mnist [steps]
//
// Prints the test accuracy on rank 0; exits 1 if training did not lower the loss.
#include <braid/braid.h>  // also braid's Fashion-MNIST reader and per-rank sharding
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>

struct Net : torch::nn::Module {
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(784, 128))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(128, 10))};
  torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::relu(fc1(x.flatten(1)))); }
};

int main(int argc, char** argv) {
  braid::World world(&argc, &argv);
  try {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 200;
    torch::set_num_threads(1);
    braid::DataConfig data_config;
    data_config.path = "/usr/share/datasets/fashion-mnist";
    braid::DataSplits data = braid::load_data(data_config, braid::ModelConfig{});

    auto net = std::make_shared<Net>();
    torch::optim::SGD optimizer(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
    braid::DataParallelOptions options;
    options.algorithm = "ring";
    braid::DataParallel dp(world, braid::named_parameters(*net), options);  // rank 0's weights

    braid::DataPlan plan(data.train.size(), world.rank(), world.size(), /*batch_size=*/64,
                         /*seed=*/1);
    double first_loss = 0, last_loss = 0;
    for (int step = 0; step < steps; ++step) {
      auto idx = plan.batch_indices(step / plan.steps_per_epoch(), step % plan.steps_per_epoch());
      optimizer.zero_grad();
      auto loss = torch::cross_entropy_loss(net->forward(data.train.inputs.index_select(0, idx)),
                                            data.train.targets.index_select(0, idx));
      loss.backward();
      dp.step(optimizer);
      (step == 0 ? first_loss : last_loss) = loss.item<double>();
    }

    torch::NoGradGuard no_grad;
    auto predicted = net->forward(data.test.inputs).argmax(1);
    double accuracy = predicted.eq(data.test.targets).to(torch::kDouble).mean().item<double>();
    if (world.rank() == 0) {
      std::printf(
          "embed_fashion_mnist: %d ranks, %d steps, loss %.3f -> %.3f, test accuracy %.4f\n",
          world.size(), steps, first_loss, last_loss, accuracy);
    }
    return last_loss < first_loss ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "embed_fashion_mnist: rank %d: %s\n", world.rank(), e.what());
    braid::World::abort(1);  // peers may be waiting in a collective
  }
}
