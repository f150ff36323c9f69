// What of the GPU path is testable without a GPU: the runtime.device rule, Buffer device
// plumbing, and the clear errors when CUDA memory meets a CPU-only transport or build.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "collectives/device_ops.h"
#include "collectives/tensor.h"
#include "collectives/transport_thread.h"
#include "common/error.h"
#include "compression/compressor_sign.h"
#include "compression/payload.h"
#include "runtime/data_parallel.h"
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

// The ATen path of sign (what CUDA tensors take) against the host loop, on the CPU: the same
// header and packed bits, and scales within one float ulp (both sum |x| in float64 and round
// once to float32; only the order of the double sum differs, which moves the double by a few
// ulps of double, so the float can land at most one float ulp apart).
TEST(DeviceCompression, SignAtenPathMatchesTheHostLoop) {
  const std::int64_t chunk = CompressorSign::kChunk;
  for (std::int64_t n :
       {std::int64_t{0}, std::int64_t{1}, std::int64_t{13}, chunk, 3 * chunk + 5}) {
    at::manual_seed(n);
    at::Tensor x = at::randn({n});
    if (n > 2) x[2] = 0.0;  // zero counts as positive on both paths
    // Chunks, and runs from a layout of two tensors and a tail (per tensor).
    CompressorSign by_chunk(SignScale::kChunk), by_tensor(SignScale::kTensor);
    by_tensor.set_layout(0, {{0, {n / 2}}, {n / 2, {n / 4}}});
    for (CompressorSign* sign : {&by_chunk, &by_tensor}) {
      const std::vector<std::int64_t> runs = sign->runs_of(n, {});
      const std::vector<std::uint8_t> loop = sign->encode(x, {});
      std::vector<std::uint8_t> aten = CompressorSign::encode_with_aten(x, runs);
      ASSERT_EQ(aten.size(), loop.size()) << "n=" << n;
      const std::size_t scales =
          runs.empty() ? static_cast<std::size_t>((n + chunk - 1) / chunk) : runs.size();
      const std::size_t scales_at = loop.size() - scales * sizeof(float) - (n + 7) / 8;
      EXPECT_TRUE(std::equal(loop.begin(), loop.begin() + scales_at, aten.begin())) << "header";
      for (std::size_t c = 0; c < scales; ++c) {
        float a = 0, b = 0;
        std::memcpy(&a, &loop[scales_at + c * sizeof(float)], sizeof(float));
        std::memcpy(&b, &aten[scales_at + c * sizeof(float)], sizeof(float));
        EXPECT_LE(std::abs(static_cast<double>(a) - b), std::ldexp(std::abs(double{a}), -23));
      }
      const std::size_t bits_at = scales_at + scales * sizeof(float);
      EXPECT_TRUE(std::equal(loop.begin() + bits_at, loop.end(), aten.begin() + bits_at)) << n;
      // Negative control: flipping one input's sign must change the packed bits.
      if (n > 0) {
        at::Tensor flipped = x.clone();
        flipped[0] = x[0].item<float>() < 0 ? 1.0 : -1.0;
        aten = CompressorSign::encode_with_aten(flipped, runs);
        EXPECT_FALSE(std::equal(loop.begin() + bits_at, loop.end(), aten.begin() + bits_at)) << n;
      }
    }
  }
}

// On CUDA only the device compressors are accepted, and the error names them.
TEST(DeviceCompression, CudaRefusesHostOnlyCompressorsByName) {
  auto transport = ThreadTransport::create_world(1)[0];
  auto comm = std::make_shared<Communicator>(transport, CommOptions{});
  at::Tensor weight = at::zeros({8}).requires_grad_();
  const NamedTensors parameters = {{"w", weight}};
  DataParallelOptions options;
  options.device = Device{Device::kCuda, 0};
  options.compression.compression.name = "qsgd";
  try {
    DataParallel dp(comm, parameters, options);
    ADD_FAILURE() << "qsgd was accepted with runtime.device cuda";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("compression.name 'qsgd'"), std::string::npos) << what;
    EXPECT_NE(what.find("none, fp16, bf16, topk, sign"), std::string::npos) << what;
  }
  for (const char* name : {"fp16", "topk", "sign"}) {  // negative control: these pass the gate
    options.compression.compression.name = name;
    EXPECT_NO_THROW(DataParallel(comm, parameters, options)) << name;
  }
}

}  // namespace
}  // namespace braid
