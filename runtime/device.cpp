#include "runtime/device.h"

#include <torch/cuda.h>

#include <c10/core/Device.h>

#include "collectives/device_ops.h"
#include "common/error.h"
#include "runtime/world.h"

namespace braid {

Device choose_device(const std::string& requested, const DeviceSupport& support, int local_rank) {
  if (requested == "cpu") return Device{};
  std::string missing;
  if (!support.torch_cuda) {
    missing = "this LibTorch has no CUDA support (install a CUDA build of LibTorch)";
  } else if (!support.braid_cuda) {
    missing = "braid was built without the CUDA path (configure with -DBRAID_CUDA=ON)";
  } else if (support.gpus == 0) {
    missing = "no GPU is visible to this process (check the driver and CUDA_VISIBLE_DEVICES)";
  } else if (local_rank >= support.gpus) {
    missing = str_cat("local rank ", local_rank, " has no GPU of its own: ", support.gpus,
                      " visible on this node and braid runs one rank per GPU");
  }
  if (missing.empty()) return Device{Device::kCuda, local_rank};
  if (requested == "auto") return Device{};
  BRAID_CHECK(requested == "cuda", "runtime.device '", requested, "'");
  throw ConfigError(
      str_cat("runtime.device is cuda, but ", missing, "; use runtime.device: cpu or auto"));
}

DeviceSupport device_support() {
  DeviceSupport support;
  support.torch_cuda = torch::cuda::is_available();
  support.braid_cuda = cuda_built();
  support.gpus = cuda_device_count();
  return support;
}

Device select_device(const World& world, const std::string& requested) {
  std::string error;
  Device device;
  try {
    device = choose_device(requested, device_support(), world.local_rank());
  } catch (const ConfigError& e) {
    error = e.what();
  }
  if (const int failing = world.lowest_failing_rank(!error.empty()); failing >= 0) {
    throw ConfigError(error.empty() ? str_cat("rank ", failing,
                                              ": runtime.device is cuda, but "
                                              "that rank cannot use a GPU (see its message)")
                                    : str_cat("rank ", world.rank(), ": ", error));
  }
  // auto: CUDA only if every rank has it (they share one transport).
  const auto on_cuda = world.all_values(device.is_cuda() ? 1 : 0);
  for (std::uint64_t v : on_cuda) {
    if (v == 0) return Device{};
  }
  return device;
}

c10::Device torch_device(Device device) {
  if (device.is_cpu()) return c10::Device(c10::kCPU);
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(device.index));
}

}  // namespace braid
