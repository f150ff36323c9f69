// What of the GPU path is testable without a GPU: the runtime.device rule, Buffer device
// plumbing, and the clear errors when CUDA memory meets a CPU-only transport or build.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "collectives/device_ops.h"
#include "collectives/tensor.h"
#include "common/error.h"
#include "runtime/device.h"
#include "spawn_ranks.h"

namespace braid {
namespace {

std::string config_error(const std::string& requested, const DeviceSupport& s, int local_rank) {
  try {
    choose_device(requested, s, local_rank);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(DeviceChoice, CpuIsAlwaysTheCpu) {
  EXPECT_TRUE(choose_device("cpu", {true, true, 8}, 3).is_cpu());
}

TEST(DeviceChoice, CudaTakesTheLocalRanksGpu) {
  const Device d = choose_device("cuda", {true, true, 4}, 3);
  EXPECT_TRUE(d.is_cuda());
  EXPECT_EQ(d.index, 3);
  EXPECT_EQ(d.str(), "cuda:3");
  EXPECT_EQ(choose_device("auto", {true, true, 4}, 1), (Device{Device::kCuda, 1}));
}

TEST(DeviceChoice, AutoFallsBackToTheCpu) {
  EXPECT_TRUE(choose_device("auto", {false, true, 4}, 0).is_cpu());
  EXPECT_TRUE(choose_device("auto", {true, false, 4}, 0).is_cpu());
  EXPECT_TRUE(choose_device("auto", {true, true, 0}, 0).is_cpu());
  EXPECT_TRUE(choose_device("auto", {true, true, 2}, 2).is_cpu());
}

TEST(DeviceChoice, CudaWithoutWhatItNeedsNamesTheMissingPiece) {
  EXPECT_NE(config_error("cuda", {false, true, 4}, 0).find("LibTorch has no CUDA"),
            std::string::npos);
  EXPECT_NE(config_error("cuda", {true, false, 4}, 0).find("-DBRAID_CUDA=ON"), std::string::npos);
  EXPECT_NE(config_error("cuda", {true, true, 0}, 0).find("no GPU is visible"), std::string::npos);
  EXPECT_NE(config_error("cuda", {true, true, 2}, 2).find("local rank 2 has no GPU"),
            std::string::npos);
  // Every message names the key.
  EXPECT_EQ(config_error("cuda", {false, false, 0}, 0).rfind("runtime.device is cuda", 0), 0u);
  EXPECT_EQ(config_error("cuda", {true, true, 1}, 0), "");  // negative control
}

TEST(DeviceChoice, CudaOnThisMachine) {
  const DeviceSupport here = device_support();
  if (here.torch_cuda && here.braid_cuda && here.gpus > 0) GTEST_SKIP() << "this machine has a GPU";
  EXPECT_THROW(choose_device("cuda", here, 0), ConfigError);
  EXPECT_TRUE(choose_device("auto", here, 0).is_cpu());
}

TEST(BufferDevice, SlicesKeepTheDevice) {
  float memory[8] = {};
  Buffer b{memory, 8, DType::kFloat32, Device{Device::kCuda, 2}};
  const Buffer s = b.slice(3, 4);
  EXPECT_EQ(s.device, b.device);
  EXPECT_EQ(s.data, static_cast<void*>(memory + 3));
  EXPECT_TRUE(Buffer{}.device.is_cpu());
  EXPECT_NE((Device{Device::kCuda, 0}), (Device{Device::kCuda, 1}));
}

TEST(BufferDevice, CpuTensorsGiveCpuBuffers) {
  at::Tensor t = at::zeros({5});
  EXPECT_TRUE(as_buffer(t).device.is_cpu());
  EXPECT_EQ(as_buffer(t).count, 5);
}

TEST(BufferDevice, CpuTransportRejectsCudaBuffers) {
  float memory[4] = {};
  testing::spawn_ranks(2, [&](Communicator& comm) {
    Buffer cuda{memory, 4, DType::kFloat32, Device{Device::kCuda, 0}};
    try {
      (void)comm.allreduce(cuda, ReduceOp::kSum, "ring");
      ADD_FAILURE() << "a CUDA buffer reached the thread transport";
    } catch (const CommError& e) {
      EXPECT_NE(std::string(e.what()).find("moves only CPU memory"), std::string::npos) << e.what();
    }
    // CPU buffers still work on the same communicator (the check runs before submission).
    float one = 1;
    comm.allreduce(Buffer{&one, 1, DType::kFloat32}, ReduceOp::kSum, "ring").wait();
    EXPECT_EQ(one, 2.0f);
  });
}

TEST(DeviceOps, CpuCopiesWorkAndCudaMemoryFailsClearlyWithoutAGpu) {
  const double src[3] = {1, 2, 3};
  double dst[3] = {};
  copy_bytes(dst, Device{}, src, Device{}, sizeof(src));
  EXPECT_EQ(dst[2], 3.0);
  if (cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  EXPECT_THROW(DeviceMemory(64, Device{Device::kCuda, 0}), CommError);
}

}  // namespace
}  // namespace braid
