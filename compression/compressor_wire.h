// CompressorWire: a Streaming DiLoCo wire format (wire_codec.h: bfloat16, e3m0) as a Compressor,
// so the fragment exchange at scale runs the compression layer's TwoPhaseExchange. The payload is
// wire_bytes() followed by one flag byte: 1 says the values are not finite (e3m0 would encode a
// NaN as 0, so the flag travels beside them) and nothing is encoded; such a payload decodes to
// NaN, so an owner that sums it gets a NaN mean and flags its own payload in turn (stage 1), and
// every rank decodes the flagged chunk as NaN.
#pragma once

#include "compression/compressor.h"
#include "compression/wire_codec.h"

namespace braid {

class CompressorWire : public Compressor {
 public:
  explicit CompressorWire(WireFormat wire) : wire_(wire) {}
  const char* name() const override { return "wire"; }
  // Whether this rank's coming payloads are flagged (its pseudo-gradient was not finite, or its
  // owner counts it so); set before the exchange, on the thread that runs it.
  void set_flag(bool flag) { flag_ = flag; }

  std::vector<std::uint8_t> encode(const at::Tensor& input, const PayloadContext& context) override;
  void decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
              const PayloadContext& context) const override;

 private:
  WireFormat wire_;
  bool flag_ = false;
};

}  // namespace braid
