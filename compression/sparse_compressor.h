// SparseCompressor: a compressor whose payload names a subset of the elements (topk, randomk).
// Subclasses implement decode_add(), which validates and adds the kept values; decode() is
// "zero, then add", written once here.
#pragma once

#include "compression/compressor.h"

namespace braid {

class SparseCompressor : public Compressor {
 public:
  void decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
              const PayloadContext& context) const final;
  void decode_add(const std::uint8_t* data, std::size_t size, at::Tensor& accumulator,
                  const PayloadContext& context) const override = 0;
};

}  // namespace braid
