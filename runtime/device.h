// The compute device of a rank (runtime.device: auto | cpu | cuda), one rank per GPU: a rank
// computes on cuda:<local rank> and its gradients move through the NCCL transport.
//
//  - cpu: the CPU.
//  - cuda: cuda:<local rank>; a ConfigError saying what is missing when LibTorch has no CUDA,
//    braid was built without the CUDA path, no GPU is visible, or there are fewer GPUs on the
//    node than ranks.
//  - auto: cuda when every rank could have it, else the CPU on every rank (ranks must agree:
//    they share one transport).
// choose_device is the rule alone (pure, tested without a GPU); select_device asks this process
// and agrees across the world, so every rank raises the same error together.
#pragma once

#include <string>

#include "collectives/buffer.h"

namespace c10 {
struct Device;
}

namespace braid {

class World;

// What this process can offer, as choose_device sees it.
struct DeviceSupport {
  bool torch_cuda = false;  // LibTorch was built with CUDA and sees a driver
  bool braid_cuda = false;  // braid was built with the CUDA path (NCCL transport)
  int gpus = 0;             // devices visible to this process
};

// The rule: `requested` is auto, cpu or cuda. Throws ConfigError naming runtime.device and what
// is missing when `requested` is cuda and it cannot be had; auto never throws.
Device choose_device(const std::string& requested, const DeviceSupport& support, int local_rank);

// This process's support (torch::cuda, cuda_built(), cuda_device_count()).
DeviceSupport device_support();

// Collective over the world: every rank applies choose_device; any rank's ConfigError is
// thrown on every rank (naming the rank), and auto becomes cpu everywhere unless all ranks get
// a GPU.
Device select_device(const World& world, const std::string& requested);

// LibTorch's name of a braid Device.
c10::Device torch_device(Device device);

}  // namespace braid
