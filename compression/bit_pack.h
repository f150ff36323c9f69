// Bit packing of fixed-width codes (qsgd's sign + level, sign's one bit per element): codes of
// `width` bits (1..32) are laid LSB-first into consecutive bytes, so n codes take
// packed_bytes(n, width) bytes and the padding bits of the last byte are zero.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/error.h"

namespace braid {

inline std::size_t packed_bytes(std::int64_t count, int width) {
  return (static_cast<std::size_t>(count) * static_cast<std::size_t>(width) + 7) / 8;
}

class BitWriter {
 public:
  BitWriter(std::uint8_t* out, std::size_t size) : out_(out), end_(out + size) {}
  void put(std::uint32_t code, int width) {
    acc_ |= static_cast<std::uint64_t>(code) << held_;
    held_ += width;
    while (held_ >= 8) emit();
  }
  // Writes the last, partial byte.
  void flush() {
    if (held_ > 0) emit();
  }

 private:
  void emit() {
    BRAID_CHECK(out_ < end_, "bit writer overflow");
    *out_++ = static_cast<std::uint8_t>(acc_);
    acc_ >>= 8;
    held_ = held_ > 8 ? held_ - 8 : 0;
  }
  std::uint8_t* out_;
  std::uint8_t* end_;
  std::uint64_t acc_ = 0;
  int held_ = 0;
};

// Reads what BitWriter wrote; the caller hands it exactly packed_bytes(n, width) bytes, so n
// reads never pass the end (checked anyway: a bug here must not become an out-of-bounds read).
class BitReader {
 public:
  BitReader(const std::uint8_t* in, std::size_t size) : in_(in), end_(in + size) {}
  std::uint32_t get(int width) {
    while (held_ < width) {
      BRAID_CHECK(in_ < end_, "bit reader past the end of its span");
      acc_ |= static_cast<std::uint64_t>(*in_++) << held_;
      held_ += 8;
    }
    auto code = static_cast<std::uint32_t>(acc_ & ((std::uint64_t{1} << width) - 1));
    acc_ >>= width;
    held_ -= width;
    return code;
  }

 private:
  const std::uint8_t* in_;
  const std::uint8_t* end_;
  std::uint64_t acc_ = 0;
  int held_ = 0;
};

}  // namespace braid
