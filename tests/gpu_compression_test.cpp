// Tier 3 (GPU, one process): the compressors that run on CUDA tensors (fp16, bf16, topk, sign;
// compression/compressor.h device_compressor_names) give the CPU's payload from a CUDA tensor,
// and decode into CUDA tensors as into CPU ones. Exits 77 (CTest: skipped) without a CUDA
// LibTorch and a GPU.
//
// Exact where the arithmetic is: fp16/bf16 casts round to nearest even on both devices, topk's
// selection has one answer (ties to the lowest index), decoding copies or adds each value once.
// Sign's scales sum |x| in float64 in another order on the GPU, so they may differ by one float
// ulp: its payloads are compared through their decodes, within |scale| 2^-23 per element.
#include <torch/torch.h>

#include <cmath>
#include <cstdio>

#include "compression/compressor.h"

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "FAILED: %s\n", what.c_str());
}

void check_compressor(const std::string& name, torch::Dtype dtype) {
  braid::CompressionOptions options;
  options.name = name;
  options.ratio = 0.05;
  auto compressor = braid::make_compressor(options);
  torch::manual_seed(3);
  at::Tensor x = torch::randn({(1 << 17) + 7}, dtype);  // above topk's exact path
  const std::string label = name + " " + std::string(c10::toString(x.scalar_type()));
  braid::PayloadContext context;
  const auto on_cpu = compressor->encode(x, context);
  const auto on_gpu = compressor->encode(x.cuda(), context);
  at::Tensor from_cpu = torch::empty_like(x), from_gpu = torch::empty_like(x);
  compressor->decode(on_cpu.data(), on_cpu.size(), from_cpu, context);
  compressor->decode(on_gpu.data(), on_gpu.size(), from_gpu, context);
  if (name == "sign") {
    at::Tensor tol = from_cpu.abs().to(torch::kDouble) * std::ldexp(1.0, -23);
    expect(((from_gpu.to(torch::kDouble) - from_cpu.to(torch::kDouble)).abs() <= tol)
               .all()
               .item<bool>(),
           label + ": payload from CUDA decodes like the CPU's");
  } else {
    expect(on_cpu == on_gpu, label + ": payload from CUDA equals the CPU's");
  }
  // Decoding and adding into a CUDA tensor equals doing it on the CPU, bitwise.
  at::Tensor acc = torch::randn_like(x), acc_gpu = acc.cuda();
  compressor->decode_add(on_cpu.data(), on_cpu.size(), acc, context);
  compressor->decode_add(on_cpu.data(), on_cpu.size(), acc_gpu, context);
  expect(torch::equal(acc, acc_gpu.cpu()), label + ": decode_add into a CUDA tensor");
  // Negative control: a different accumulator must be told apart by the same comparison.
  expect(!torch::equal(acc, (acc_gpu + 1).cpu()), label + ": the comparison can fail");
}

}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::printf("SKIPPED: gpu_compression_test needs a CUDA LibTorch and a GPU\n");
    return 77;
  }
  try {
    for (const char* name : {"fp16", "bf16", "topk", "sign"}) {
      for (torch::Dtype dtype : {torch::kFloat32, torch::kFloat64}) check_compressor(name, dtype);
    }
  } catch (const std::exception& e) {
    ++failures;
    std::fprintf(stderr, "FAILED: %s\n", e.what());
  }
  std::printf("gpu_compression_test: %d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
