// braid's public header for embedding data-parallel training in your own LibTorch loop.
// CMake: find_package(braid REQUIRED) and target_link_libraries(app PRIVATE braid::braid).
//
//   #include <braid/braid.h>
//   int main(int argc, char** argv) {
//     braid::World world(&argc, &argv);               // MPI up; rank, size, local rank
//     auto model = std::make_shared<MyNet>();
//     torch::optim::SGD optimizer(model->parameters(), 0.05);
//     braid::DataParallel dp(world, braid::named_parameters(*model));  // rank 0's weights
//     for (...) {
//       optimizer.zero_grad();
//       loss_fn(model->forward(x), y).backward();       // gradients are averaged during backward
//       dp.step(optimizer);                             // wait for the averages, then step
//     }
//   }
//
// Data: braid::load_data reads Fashion-MNIST or a text corpus (a DataConfig names which and
// where), and braid::DataPlan gives each rank its shard of every global batch; see
// examples/embed_fashion_mnist.cpp. braid::DistributedSampler hands that shard to a
// torch::data DataLoader, reshuffled every epoch (docs/embedding.md).
//
// Errors are exceptions (common/error.h); a program that catches one should end every rank,
// e.g. with braid::World::abort(1), because peers may be waiting in a collective.
//
// This is the only header users include. Installed, it lives at <prefix>/include/braid/braid.h
// and includes the rest as <braid/collectives/communicator.h> and so on (the installer rewrites
// the rooted includes below), so only <prefix>/include is on the include path.
#pragma once

#include "collectives/communicator.h"
#include "collectives/tensor.h"
#include "common/error.h"
#include "common/version.h"
#include "optimizers/dgc_sgd.h"
#include "runtime/data.h"
#include "runtime/data_parallel.h"
#include "runtime/distributed_optimizer.h"
#include "runtime/distributed_sampler.h"
#include "runtime/world.h"
