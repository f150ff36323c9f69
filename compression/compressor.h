// Compressor: the door between a strategy's exchange and the encodings of the papers.
// A compressor turns one bucket's flat
// tensor (float32 or float64) into a self-describing payload of bytes and adds decoded payloads
// back into an accumulator. It sends nothing itself; the strategy moves the payloads:
//  - summable() compressors (dense fp16/bf16) produce payloads that are element-wise sums on
//    the wire: the strategy allreduces the payload as a tensor of wire_dtype() elements;
//  - the others (sparse indices + values, signs, quantized codes) are gathered from every rank
//    (Communicator::allgather_bytes) and each rank decodes and sums them in the bucket's dtype,
//    in rank order, so every rank gets the bitwise same result.
// Randomised compressors draw from a generator seeded by (seed, bucket, step), so a payload is
// reproducible and ranks that must agree (random-k's shared indices) do.
//
// Payloads are validated on decode: wrong magic or kind, a length that does not match the
// header, an element count other than the accumulator's, an index out of range or a code out
// of range is a CommError naming the source rank and the bucket; a decoder never reads or
// writes out of bounds, whatever the bytes.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "collectives/buffer.h"
#include "compression/bucket_layout.h"

namespace braid {

// dgc (Lin et al., ICLR 2018; dgc_memory.h): the corrections DGC adds around top-k.
struct DgcOptions {
  double momentum = 0.9;         // m of the locally accumulated velocity u = m u + g
  bool nesterov = false;         // u = m (u + g), v += u + g
  bool momentum_masking = true;  // clear u where v was sent
  // Warm-up: the kept ratio during epoch e < warmup_epochs is ratio^((e+1)/(warmup_epochs+1)),
  // with e = step / steps_per_epoch (the strategy counts steps; the trainer knows the epoch).
  std::int64_t warmup_epochs = 0;
  std::int64_t steps_per_epoch = 0;
};

struct CompressionOptions {
  // Accumulate the optimizer's momentum (dgc.momentum) per rank before compressing, for any
  // compressor (momentum_correction.h); dgc always does.
  bool momentum_correction = false;
  std::string name = "none";     // compressor_names()
  double ratio = 0.01;           // topk, randomk, dgc: fraction of elements kept, in (0, 1]
  int bits = 4;                  // qsgd: bits per level index, 1..8 (2^bits - 1 levels)
  std::uint64_t seed = 0;        // qsgd, randomk, topk (its threshold sample)
  int rank = 2;                  // powersgd: rank of the approximation of each matrix, >= 1
  std::string scale = "tensor";  // sign: one scale per tensor or per 512-element chunk
  // How gathered (non-summable) payloads travel: auto | gather | two_phase (bucket_exchange.h).
  std::string exchange = "auto";
  // ef21, econtrol: where each rank's gradient estimate h_i starts (estimate_init_names()):
  // gradient (the papers' h_i = g_i at the first step, which goes out uncompressed) or
  // compressed (h_i = C(g_i), so that econtrol with eta 0 is EF21 from a compressed start).
  std::string estimate_init = "gradient";
  DgcOptions dgc;
};

// Where a payload is going or coming from, for seeds and error messages.
struct PayloadContext {
  int bucket = 0;
  std::int64_t step = 0;
  int source_rank = 0;  // decode: the rank that encoded it
  // A two-phase exchange compresses chunk `part` of a bucket on its own, first on every rank
  // (stage 0), then once more on the chunk's owner (stage 1); seeds mix both in.
  int part = 0;
  int stage = 0;
  // Where the encoded tensor starts in its bucket, in elements (a two-phase chunk's offset), so
  // that compressors that follow the bucket's layout find its tensors.
  std::int64_t offset = 0;
};

class Compressor {
 public:
  virtual ~Compressor() = default;
  virtual const char* name() const = 0;

  // Payloads can be summed element-wise as wire_dtype() values (then the exchange is an
  // allreduce of the payload, and decode_add() reads a summed payload).
  virtual bool summable() const { return false; }
  virtual DType wire_dtype() const { return DType::kUInt8; }

  // Encodes `input` (flat, contiguous float32 or float64 CPU tensor).
  virtual std::vector<std::uint8_t> encode(const at::Tensor& input,
                                           const PayloadContext& context) = 0;
  // What the payload stands for, written into `output` (same numel and dtype as the encoded
  // tensor); CommError on a malformed payload.
  virtual void decode(const std::uint8_t* data, std::size_t size, at::Tensor& output,
                      const PayloadContext& context) const = 0;
  // Adds what the payload stands for into `accumulator`; the default decodes and adds.
  virtual void decode_add(const std::uint8_t* data, std::size_t size, at::Tensor& accumulator,
                          const PayloadContext& context) const;
  // The tensors packed in `bucket`, before its first encode (dgc selects per tensor); the
  // others compress a bucket as one tensor and ignore it.
  virtual void set_layout(int bucket, const BucketLayout& layout) {}

  // topk, randomk: how many of `count` elements a keep-ratio keeps,
  // max(1, round(ratio * count)) (0 for an empty tensor), never more than count.
  static std::int64_t kept_elements(double ratio, std::int64_t count);
};

// The payload compressors: none, fp16, bf16, qsgd, topk, randomk, sign, dgc (top-k whose ratio
// follows DGC's warm-up; its corrections live in dgc_memory.h). compression.name also
// accepts powersgd, which is an exchange of its own (bucket_exchange.h: compression_names()).
const std::vector<std::string>& compressor_names();
// The compressors that take CUDA tensors (ATen ops on the tensor's device; the payload is
// built on the host from what they select): none, fp16, bf16, topk, sign. The others read
// tensors through host pointers and need CPU tensors.
const std::vector<std::string>& device_compressor_names();
// Throws ConfigError naming compression.name (and the valid names) or the bad option.
std::unique_ptr<Compressor> make_compressor(const CompressionOptions& options);

}  // namespace braid
