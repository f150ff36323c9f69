// What the example programs print to be compared: a checksum of the parameters for the result
// line, and the ports' exact check that every rank holds the same replica.
#pragma once

#include <braid/braid.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <vector>

namespace examples {

// float64 sum of every parameter: one number that any update moves, printed with %.17g on the
// result line so that two runs compare bitwise.
inline double parameter_checksum(const std::vector<const torch::nn::Module*>& modules) {
  double sum = 0;
  for (const auto* module : modules) {
    for (const auto& p : module->parameters()) {
      sum += p.detach().to(torch::kDouble).sum().item<double>();
    }
  }
  return sum;
}

// FNV-1a over every byte of every parameter: unlike a sum, two replicas that differ anywhere
// (even by swapped values) get different fingerprints.
inline std::uint64_t parameter_fingerprint(const std::vector<const torch::nn::Module*>& modules) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (const auto* module : modules) {
    for (const auto& p : module->parameters()) {
      const auto bytes = p.detach().contiguous().cpu();
      const auto* data = static_cast<const unsigned char*>(bytes.data_ptr());
      for (std::size_t i = 0; i < bytes.nbytes(); ++i) hash = (hash ^ data[i]) * 1099511628211ULL;
    }
  }
  return hash;
}

// Collective: whether every rank's parameters are bitwise those of rank 0. The main rank
// prints every rank's fingerprint when they are not.
inline bool replicas_identical(const braid::World& world,
                               const std::vector<const torch::nn::Module*>& modules) {
  const auto fingerprints = world.all_values(parameter_fingerprint(modules));
  bool identical = true;
  for (const auto f : fingerprints) identical = identical && f == fingerprints[0];
  if (!identical && world.is_main()) {
    for (std::size_t r = 0; r < fingerprints.size(); ++r) {
      std::fprintf(stderr, "replica of rank %zu: fingerprint %016llx\n", r,
                   static_cast<unsigned long long>(fingerprints[r]));
    }
  }
  return identical;
}

}  // namespace examples
