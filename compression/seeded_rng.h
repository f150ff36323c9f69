// SeededRng: the reproducible random stream of the randomised compressors (qsgd's stochastic
// rounding, random-k's indices). It is splitmix64 over a seed mixed from a list of integers
// (seed, bucket, step, and for qsgd the encoding rank), written out here rather than taken from
// <random> so that every platform and standard library draws the same numbers: random-k's
// receivers regenerate the sender's indices, so bit-for-bit agreement is part of the format.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace braid {

class SeededRng {
 public:
  explicit SeededRng(std::initializer_list<std::uint64_t> keys) {
    for (std::uint64_t key : keys) state_ = mix(state_ ^ key) + kGamma;
  }

  std::uint64_t next() { return mix(state_ += kGamma); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, bound) for bound > 0; the modulo bias is below bound / 2^64, negligible for
  // the bucket sizes a tensor can have.
  std::uint64_t below(std::uint64_t bound) { return next() % bound; }

 private:
  static constexpr std::uint64_t kGamma = 0x9e3779b97f4a7c15ULL;
  static std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t state_ = 0x243f6a8885a308d3ULL;
};

}  // namespace braid
