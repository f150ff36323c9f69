#include "runtime/token_data.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "common/error.h"
#include "runtime/mapped_file.h"

namespace braid {
namespace fs = std::filesystem;
namespace {

std::int64_t context_of(const DataConfig& data, const ModelConfig& model) {
  return data.context > 0 ? data.context : model.context;
}

Dataset load_split(const DataConfig& data, std::int64_t context, const std::string& name,
                   std::int64_t limit) {
  const fs::path file = fs::path(data.path) / name;
  const at::Tensor raw = map_file(file, "tokens");
  const int width = data.token_dtype == "uint32" ? 4 : 2;
  auto refuse = [&](const std::string& what) {
    return ConfigError(str_cat(data_location(file.string(), "tokens"), ": ", what));
  };
  if (raw.numel() % width != 0) {
    throw refuse(str_cat(raw.numel(), " bytes is not a whole number of ", data.token_dtype,
                         " tokens (data.token_dtype)"));
  }
  // LibTorch 1.13 has no uint16: the ids are viewed as the signed type of their width and
  // widened back when a batch is read (Dataset::rows).
  const at::Tensor tokens = raw.view(width == 4 ? at::kInt : at::kShort);
  const std::int64_t available = (tokens.numel() - 1) / context;
  if (available < 1) {
    throw refuse(str_cat(tokens.numel(), " tokens: fewer than one window of ", context,
                         " (data.context) plus its next token"));
  }
  const std::int64_t windows = limit > 0 ? std::min(available, limit) : available;
  Dataset set;
  set.inputs = tokens.narrow(0, 0, windows * context).view({windows, context});
  set.targets = tokens.narrow(0, 1, windows * context).view({windows, context});
  set.unsigned_bits = 8 * width;
  return set;
}

}  // namespace

const std::vector<std::string>& token_dtype_names() {
  static const std::vector<std::string> names = {"uint16", "uint32"};
  return names;
}

DataSplits load_tokens(const DataConfig& data, const ModelConfig& model) {
  const std::int64_t context = context_of(data, model);
  DataSplits splits;
  splits.train = load_split(data, context, "train.bin", data.train_limit);
  splits.test = load_split(data, context, "val.bin", data.test_limit);
  return splits;
}

void check_token_range(const DataConfig& data, const Dataset& train, Model& model) {
  const std::int64_t vocabulary = model.vocabulary();
  if (vocabulary <= 0 || train.size() == 0) return;
  const std::int64_t rows =
      std::min<std::int64_t>(train.size(), ((1 << 20) / train.inputs.size(1)) + 1);
  // The inputs of the first windows are the stream's first tokens, in order.
  const at::Tensor block = train.rows(at::arange(rows, at::kLong)).first.reshape({-1});
  const std::int64_t largest = block.max().item<std::int64_t>();
  if (largest < vocabulary) return;
  const std::int64_t at = block.ge(vocabulary).nonzero()[0][0].item<std::int64_t>();
  throw ConfigError(str_cat(data_location((fs::path(data.path) / "train.bin").string(), "tokens"),
                            ": token id ", largest, " (the first out of range is at index ", at,
                            ") is not below the model's vocabulary of ", vocabulary,
                            "; check data.token_dtype and that the model's embedding fits the "
                            "tokenizer"));
}

}  // namespace braid
