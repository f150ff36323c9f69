// braid's public header for embedding data-parallel training in your own LibTorch loop.
// CMake: find_package(braid REQUIRED) and target_link_libraries(app PRIVATE braid::braid).
//
//   #include <braid/braid.h>
//   int main(int argc, char** argv) {
//     braid::World world(&argc, &argv);               // MPI up; rank, size, local rank
//     auto model = std::make_shared<MyNet>();
//     torch::optim::SGD optimizer(model->parameters(), 0.05);
//     braid::DataParallel dp(world, braid::named_parameters(*model));  // rank 0's weights
//     everywhere for (...) {
//       optimizer.zero_grad();
//       loss_fn(model->forward(x), y).backward();       // gradients are averaged during backward
//       dp.step(optimizer);                             // wait for the averages, then step
//     }
//   }
//
// Errors are exceptions (common/error.h); a program that catches one should end every rank,
// e.g. with braid::World::abort(1), because peers may be waiting in a collective.
#pragma once

#include "collectives/communicator.h"
#include "collectives/tensor.h"
#include "common/error.h"
#include "common/version.h"
#include "runtime/data_parallel.h"
#include "runtime/world.h"
