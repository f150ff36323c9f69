// The factory of compressors: the one place their names are listed (config validation accepts
// exactly compressor_names()). A new compressor is a new file here plus one line below.
#include <cmath>

#include "common/error.h"
#include "compression/compressor.h"
#include "compression/compressor_dgc.h"
#include "compression/compressor_half.h"
#include "compression/compressor_none.h"
#include "compression/compressor_qsgd.h"
#include "compression/compressor_randomk.h"
#include "compression/compressor_sign.h"
#include "compression/compressor_topk.h"

namespace braid {
namespace {

void check_ratio(double ratio) {
  if (!(ratio > 0 && ratio <= 1)) {
    throw ConfigError(str_cat("compression.ratio: ", ratio, " is not in (0, 1]"));
  }
}

}  // namespace

const std::vector<std::string>& compressor_names() {
  static const std::vector<std::string> names = {"none", "fp16",    "bf16", "qsgd",
                                                 "topk", "randomk", "sign", "dgc"};
  return names;
}

const std::vector<std::string>& device_compressor_names() {
  static const std::vector<std::string> names = {"none", "fp16", "bf16", "topk", "sign"};
  return names;
}

std::unique_ptr<Compressor> make_compressor(const CompressionOptions& options) {
  const std::string& name = options.name;
  if (name == "none") return std::make_unique<CompressorNone>();
  if (name == "fp16") return std::make_unique<CompressorHalf>(DType::kFloat16);
  if (name == "bf16") return std::make_unique<CompressorHalf>(DType::kBFloat16);
  if (name == "qsgd") {
    if (options.bits < 1 || options.bits > 8) {
      throw ConfigError(str_cat("compression.bits: ", options.bits, " is not in 1..8"));
    }
    return std::make_unique<CompressorQsgd>(options.bits, options.seed);
  }
  if (name == "topk") {
    check_ratio(options.ratio);
    return std::make_unique<CompressorTopK>(options.ratio, options.seed);
  }
  if (name == "randomk") {
    check_ratio(options.ratio);
    return std::make_unique<CompressorRandomK>(options.ratio, options.seed);
  }
  if (name == "sign") return std::make_unique<CompressorSign>(sign_scale_of(options.scale));
  if (name == "dgc") {
    check_ratio(options.ratio);
    return std::make_unique<CompressorDgc>(options.ratio, options.dgc, options.seed);
  }
  throw ConfigError(str_cat("compression.name: unknown compressor '", name,
                            "' (valid: ", join(compressor_names()), ")"));
}

}  // namespace braid
