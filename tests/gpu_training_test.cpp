// Tier 3 (GPU, under mpirun): one DataParallel SGD step of a small MLP on cuda:<local rank>
// (gradients over NCCL) equals the same step on the CPU (gradients over MPI). Exits 77 (CTest:
// skipped) without a CUDA LibTorch or a GPU.
//
// Tolerance: float32 forward and backward pass through dot products of length at most
// n = 64; CPU and GPU sum them in different orders, so each gradient entry differs by at most
// about 2 n u sum|terms| (u = 2^-24, Higham's gamma_n), and the SGD update p - lr g moves that
// difference by lr. With |p| <= 1 and sum|terms| <= |g|_1 of the batch, per entry:
//   tol = u |p| + lr * 2 n u * (|g| + 1),  compared in float64.
// The negative control moves one entry by 100 tol and must be caught.
#include <mpi.h>
#include <torch/torch.h>

#include <cstdio>

#include "runtime/data_parallel.h"
#include "runtime/device.h"
#include "runtime/world.h"

namespace {

struct Mlp : torch::nn::Module {
  torch::nn::Linear a{nullptr}, b{nullptr};
  Mlp() {
    a = register_module("a", torch::nn::Linear(32, 64));
    b = register_module("b", torch::nn::Linear(64, 10));
  }
  at::Tensor forward(const at::Tensor& x) { return b->forward(torch::relu(a->forward(x))); }
};

// Parameters after one step on `device` (as float64 on the CPU) and the CPU gradients.
std::vector<at::Tensor> one_step(braid::World& world, braid::Device device, double lr,
                                 std::vector<at::Tensor>* grads) {
  torch::manual_seed(7);
  auto model = std::make_shared<Mlp>();
  const c10::Device where = braid::torch_device(device);
  model->to(where);
  braid::DataParallelOptions options;
  options.algorithm = "ring";
  options.device = device;
  braid::DataParallel dp(world, braid::named_parameters(*model), options);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(lr));
  torch::manual_seed(100 + world.rank());
  at::Tensor x = torch::randn({16, 32}), y = torch::randint(0, 10, {16});
  sgd.zero_grad();
  torch::nn::functional::cross_entropy(model->forward(x.to(where)), y.to(where)).backward();
  dp.step(sgd);
  std::vector<at::Tensor> out;
  for (auto& p : model->parameters()) {
    out.push_back(p.detach().to(torch::kCPU, torch::kDouble));
    if (grads) grads->push_back(p.grad().detach().to(torch::kCPU, torch::kDouble).abs());
  }
  return out;
}

int ranks_on_node() {
  MPI_Comm node;
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &size);
  MPI_Comm_free(&node);
  return size;
}

}  // namespace

int main(int argc, char** argv) {
  braid::World world(&argc, &argv);
  // One rank per GPU: NCCL refuses two ranks on one GPU ("Duplicate GPU detected").
  const int on_node = ranks_on_node(), gpus = static_cast<int>(torch::cuda::device_count());
  const bool skip = !torch::cuda::is_available() || gpus < on_node;
  if (world.lowest_failing_rank(skip) >= 0) {
    if (world.rank() == 0) {
      std::printf(
          "SKIPPED: gpu_training_test needs a CUDA LibTorch and one GPU per rank (LibTorch CUDA: "
          "%s, %d rank(s) on a node, %d GPU(s))\n",
          torch::cuda::is_available() ? "yes" : "no", on_node, gpus);
    }
    return 77;
  }
  const double lr = 0.1, n = 64, u = std::ldexp(1.0, -24);
  std::vector<at::Tensor> grads;
  auto cpu = one_step(world, braid::Device{}, lr, &grads);
  auto gpu = one_step(world, braid::Device{braid::Device::kCuda, world.local_rank()}, lr, nullptr);
  int failures = 0;
  bool control_caught = true;
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    at::Tensor tol = u * cpu[i].abs() + lr * 2 * n * u * (grads[i] + 1);
    at::Tensor diff = (gpu[i] - cpu[i]).abs();
    if ((diff > tol).any().item<bool>()) {
      ++failures;
      std::fprintf(stderr, "parameter %zu: max diff %.3g over tol\n", i, diff.max().item<double>());
    }
    at::Tensor moved = gpu[i].clone();
    moved.view(-1)[0] += 100 * tol.view(-1)[0];
    if (!((moved - cpu[i]).abs() > tol).any().item<bool>()) control_caught = false;
  }
  if (!control_caught) ++failures;
  const bool any = world.lowest_failing_rank(failures > 0) >= 0;
  if (world.rank() == 0) std::printf("gpu_training_test: %s\n", any ? "FAILED" : "passed");
  return any ? 1 : 0;
}
