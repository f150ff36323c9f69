#include "runtime/data.h"

// Narrow ATen headers only: <torch/torch.h> would cost ~30 s and 1 GB of compiler memory.
#include <ATen/ATen.h>
#include <ATen/core/Tensor.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "runtime/npy_arrays.h"
#include "runtime/token_data.h"

namespace braid {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTextPath = "/usr/share/games/fortunes";
constexpr std::int64_t kImageSide = 28;
constexpr std::int64_t kFashionClasses = 10;

using Bytes = std::vector<std::uint8_t>;

[[noreturn]] void fail(const fs::path& dir, const std::string& file, const std::string& what) {
  throw ConfigError(str_cat("data.path '", dir.string(), "': ", file, ": ", what));
}

std::string where(const fs::path& path, const std::string& name) {
  return data_location(path.string(), name);
}

const std::vector<std::string>& fashion_files() {
  static const std::vector<std::string> files = {
      "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
      "t10k-labels-idx1-ubyte.gz"};
  return files;
}

std::string fashion_expected() {
  return str_cat("expected a directory holding the Fashion-MNIST idx files ", join(fashion_files()),
                 " (apt-get install dataset-fashion-mnist)");
}

constexpr const char* kTextExpected =
    "expected a text file, or a directory of text files such as Debian's fortunes (apt-get "
    "install fortunes)";

// A directory of the data set `name` holding `files`; `expected` says what belongs there.
void check_directory(const fs::path& dir, const std::string& name,
                     const std::vector<std::string>& files, const std::string& expected) {
  if (dir.empty()) {
    throw ConfigError(str_cat("data.path: data.name ", name, " needs one; ", expected));
  }
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    throw ConfigError(str_cat(where(dir, name), ": does not exist; ", expected));
  }
  if (!fs::is_directory(dir, ec)) {
    throw ConfigError(str_cat(where(dir, name), ": not a directory; ", expected));
  }
  for (const std::string& file : files) {
    if (!fs::is_regular_file(dir / file, ec)) {
      throw ConfigError(str_cat(where(dir, name), ": ", file, " is missing; ", expected));
    }
  }
}

// A text file has no NUL byte and no gzip magic in its first 4 KiB: that tells fortunes and
// other text from images, archives and the idx files without reading a whole corpus.
bool looks_like_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return false;
  char head[4096];
  in.read(head, sizeof head);
  const std::streamsize n = in.gcount();
  if (n >= 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
      static_cast<unsigned char>(head[1]) == 0x8b) {
    return false;
  }
  return std::find(head, head + n, '\0') == head + n;
}

// The files the text corpus is made of, in the order they are concatenated: data.path itself
// when it is a file; else every regular file of the directory but the fortune indexes (.dat)
// and UTF-8 copies (.u8), in sorted name order. Throws ConfigError when that is not text.
std::vector<fs::path> text_files(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw ConfigError(str_cat(where(path, "text"), ": does not exist; ", kTextExpected));
  }
  if (fs::is_regular_file(path, ec)) {
    if (!looks_like_text(path)) {
      throw ConfigError(str_cat(where(path, "text"), ": not a text file; ", kTextExpected));
    }
    return {path};
  }
  if (!fs::is_directory(path, ec)) {
    throw ConfigError(str_cat(where(path, "text"), ": not a file or directory; ", kTextExpected));
  }
  if (fs::is_regular_file(path / fashion_files().front(), ec)) {
    throw ConfigError(str_cat(
        where(path, "text"),
        ": holds the Fashion-MNIST idx files (data.name fashion_mnist reads them), not text; ",
        kTextExpected));
  }
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(path, ec)) {
    const fs::path& p = entry.path();
    if (entry.is_regular_file() && p.extension() != ".dat" && p.extension() != ".u8") {
      files.push_back(p);
    }
  }
  if (ec) throw ConfigError(str_cat(where(path, "text"), ": ", ec.message()));
  if (files.empty()) {
    throw ConfigError(str_cat(where(path, "text"), ": no text files; ", kTextExpected));
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    if (!looks_like_text(file)) {
      throw ConfigError(str_cat(where(path, "text"), ": ", file.filename().string(),
                                " is not a text file; ", kTextExpected));
    }
  }
  return files;
}

fs::path resolved_path(const DataConfig& data) {
  if (!data.path.empty()) return data.path;
  return data.name == "text" ? kTextPath : kFashionMnistPath;
}

std::int64_t apply_limit(std::int64_t available, std::int64_t limit) {
  return limit == 0 ? available : std::min(available, limit);
}

struct GzCloser {
  void operator()(gzFile_s* gz) const { gzclose(gz); }
};

Bytes read_gz(const fs::path& dir, const std::string& file) {
  const fs::path path = dir / file;
  if (!fs::is_regular_file(path)) fail(dir, file, "missing");
  std::unique_ptr<gzFile_s, GzCloser> gz(gzopen(path.c_str(), "rb"));
  if (!gz) fail(dir, file, "cannot open");
  Bytes bytes;
  std::vector<char> chunk(1 << 20);
  for (;;) {
    const int n = gzread(gz.get(), chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n <= 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  }
  // A truncated stream ends reads quietly with Z_BUF_ERROR, so ask zlib how reading ended.
  int err = Z_OK;
  const char* message = gzerror(gz.get(), &err);
  if (err != Z_OK) fail(dir, file, str_cat("truncated or corrupt gzip data (", message, ")"));
  return bytes;
}

std::uint32_t read_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

// An idx file: big-endian magic (0x0000 0x08 = unsigned byte, then the rank), the dims, then
// the bytes row-major.
struct Idx {
  Bytes bytes;
  std::vector<std::int64_t> dims;
  const std::uint8_t* data() const { return bytes.data() + 4 + 4 * dims.size(); }
};

Idx read_idx(const fs::path& dir, const std::string& file, std::uint32_t magic, int rank) {
  Idx idx{read_gz(dir, file), {}};
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(rank);
  if (idx.bytes.size() < header) {
    fail(dir, file, str_cat("too short for an idx header (", idx.bytes.size(), " bytes)"));
  }
  const std::uint32_t found = read_be32(idx.bytes.data());
  if (found != magic) fail(dir, file, str_cat("bad idx magic ", found, ", expected ", magic));
  // Three 32-bit dims can overflow 64 bits, so the product is checked in long double.
  long double payload = 1;
  for (int d = 0; d < rank; ++d) {
    idx.dims.push_back(read_be32(idx.bytes.data() + 4 + 4 * d));
    payload *= static_cast<long double>(idx.dims.back());
  }
  const std::size_t found_bytes = idx.bytes.size() - header;
  if (payload != static_cast<long double>(found_bytes)) {
    fail(dir, file,
         str_cat("header promises ", static_cast<double>(payload), " data bytes, file has ",
                 found_bytes));
  }
  return idx;
}

Dataset load_fashion_split(const fs::path& dir, const std::string& prefix, std::int64_t limit) {
  const std::string image_file = prefix + "-images-idx3-ubyte.gz";
  const std::string label_file = prefix + "-labels-idx1-ubyte.gz";
  const Idx images = read_idx(dir, image_file, 2051, 3);
  const Idx labels = read_idx(dir, label_file, 2049, 1);
  if (images.dims[1] != kImageSide || images.dims[2] != kImageSide) {
    fail(dir, image_file,
         str_cat("images are ", images.dims[1], "x", images.dims[2], ", expected 28x28"));
  }
  if (images.dims[0] != labels.dims[0]) {
    fail(dir, label_file, str_cat(labels.dims[0], " labels for ", images.dims[0], " images"));
  }
  const std::int64_t n = apply_limit(images.dims[0], limit);

  const std::int64_t pixels = kImageSide * kImageSide;
  at::Tensor raw = at::empty({n, 1, kImageSide, kImageSide}, at::kByte);
  std::memcpy(raw.data_ptr<std::uint8_t>(), images.data(), static_cast<std::size_t>(n * pixels));
  Dataset split;
  split.inputs = raw.to(at::kFloat).div_(255.0).sub_(kFashionMean).div_(kFashionStd);

  split.targets = at::empty({n}, at::kLong);
  std::int64_t* out = split.targets.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = labels.data()[i];
    if (out[i] >= kFashionClasses) {
      fail(dir, label_file, str_cat("label ", out[i], " at index ", i, " is not in [0, 10)"));
    }
  }
  return split;
}

// Non-overlapping windows: inputs bytes[i*c, i*c+c), targets one byte later.
Dataset make_windows(const std::uint8_t* bytes, std::int64_t length, std::int64_t context,
                     std::int64_t limit) {
  const std::int64_t windows = apply_limit(length > 0 ? (length - 1) / context : 0, limit);
  const std::int64_t used = windows * context + (windows > 0 ? 1 : 0);
  at::Tensor raw = at::empty({used}, at::kByte);
  if (used > 0) std::memcpy(raw.data_ptr<std::uint8_t>(), bytes, static_cast<std::size_t>(used));
  Dataset split;
  split.inputs = raw.narrow(0, 0, windows * context).view({windows, context}).to(at::kLong);
  split.targets =
      raw.narrow(0, used > 0 ? 1 : 0, windows * context).view({windows, context}).to(at::kLong);
  return split;
}

DataSplits load_text(const DataConfig& data, const ModelConfig& model) {
  if (model.context <= 0)
    throw ConfigError(str_cat("model.context must be > 0, got ", model.context));
  Bytes corpus;
  for (const fs::path& file : text_files(resolved_path(data))) {
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(file.parent_path(), file.filename().string(), "cannot open");
    corpus.insert(corpus.end(), std::istreambuf_iterator<char>(in),
                  std::istreambuf_iterator<char>());
    if (in.bad()) fail(file.parent_path(), file.filename().string(), "read error");
  }

  const auto total = static_cast<std::int64_t>(corpus.size());
  const auto test_bytes =
      static_cast<std::int64_t>(static_cast<double>(total) * data.test_fraction);
  const std::int64_t train_bytes = total - test_bytes;
  DataSplits splits;
  splits.train = make_windows(corpus.data(), train_bytes, model.context, data.train_limit);
  splits.test =
      make_windows(corpus.data() + train_bytes, test_bytes, model.context, data.test_limit);
  splits.num_classes = 256;
  return splits;
}

}  // namespace

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {"fashion_mnist", "text", "arrays", "tokens"};
  return names;
}

void check_data(const DataConfig& data) {
  if (data.train_limit < 0) {
    throw ConfigError(str_cat("data.train_limit must be >= 0, got ", data.train_limit));
  }
  if (data.test_limit < 0) {
    throw ConfigError(str_cat("data.test_limit must be >= 0, got ", data.test_limit));
  }
  if (data.name == "fashion_mnist") {
    return check_directory(resolved_path(data), data.name, fashion_files(), fashion_expected());
  }
  if (data.name == "arrays") {
    return check_directory(
        data.path, data.name, array_files(),
        str_cat("expected a directory holding ", join(array_files()), " (numpy.save)"));
  }
  if (data.name == "tokens") {
    return check_directory(data.path, data.name, {"train.bin", "val.bin"},
                           "expected a directory holding train.bin and val.bin (token ids, "
                           "numpy.ndarray.tofile)");
  }
  if (data.name == "text") {
    if (!(data.test_fraction >= 0.0 && data.test_fraction < 1.0)) {
      throw ConfigError(str_cat("data.test_fraction must be in [0, 1), got ", data.test_fraction));
    }
    text_files(resolved_path(data));
    return;
  }
  throw ConfigError(str_cat("data.name: unknown data set '", data.name,
                            "' (valid: ", join(dataset_names()), ")"));
}

DataSplits load_data(const DataConfig& data, const ModelConfig& model) {
  check_data(data);
  if (data.name == "text") return load_text(data, model);
  if (data.name == "arrays") return load_arrays(data);
  if (data.name == "tokens") return load_tokens(data, model);
  const fs::path dir = resolved_path(data);
  DataSplits splits;
  splits.train = load_fashion_split(dir, "train", data.train_limit);
  splits.test = load_fashion_split(dir, "t10k", data.test_limit);
  splits.num_classes = kFashionClasses;
  return splits;
}

std::string data_location(const std::string& path, const std::string& data_name) {
  return str_cat("data.path '", path, "' (data.name ", data_name, ")");
}

std::pair<at::Tensor, at::Tensor> Dataset::rows(const at::Tensor& indices) const {
  at::Tensor x = inputs.index_select(0, indices), y = targets.index_select(0, indices);
  if (unsigned_bits > 0) {
    const std::int64_t mask = (std::int64_t{1} << unsigned_bits) - 1;
    x = x.to(at::kLong).bitwise_and(mask);
    y = y.to(at::kLong).bitwise_and(mask);
  }
  return {x, y};
}

DataPlan::DataPlan(std::int64_t samples, int rank, int world, std::int64_t batch_size,
                   std::uint64_t seed)
    : samples_(samples),
      batch_size_(batch_size),
      steps_per_epoch_(0),
      rank_(rank),
      world_(world),
      seed_(seed) {
  BRAID_CHECK(world > 0 && rank >= 0 && rank < world, "rank ", rank, " of world ", world);
  BRAID_CHECK(samples >= 0, "samples ", samples);
  if (batch_size <= 0) throw ConfigError(str_cat("data.batch_size must be > 0, got ", batch_size));
  steps_per_epoch_ = samples / (world * batch_size);
  if (steps_per_epoch_ == 0) {
    throw ConfigError(str_cat("data set too small: ", samples, " training samples, fewer than ",
                              world, " ranks x data.batch_size ", batch_size, " = ",
                              world * batch_size,
                              " per step; lower data.batch_size or the rank "
                              "count, or raise data.train_limit"));
  }
}

at::Tensor DataPlan::partition_indices(std::int64_t epoch, std::int64_t step, int partition,
                                       std::int64_t offset) {
  BRAID_CHECK(partition >= 0 && partition < world_, "partition ", partition, " of ", world_);
  return permutation(epoch, step, offset)
      .narrow(0, offset + (step * world_ + partition) * batch_size_, batch_size_);
}

at::Tensor DataPlan::piece_indices(std::int64_t epoch, std::int64_t step, int piece, int pieces,
                                   std::int64_t offset) {
  const std::int64_t global = world_ * batch_size_;
  BRAID_CHECK(pieces > 0 && global % pieces == 0 && piece >= 0 && piece < pieces, "piece ", piece,
              " of ", pieces, " of a global batch of ", global);
  const std::int64_t size = global / pieces;
  return permutation(epoch, step, offset).narrow(0, offset + step * global + piece * size, size);
}

const at::Tensor& DataPlan::permutation(std::int64_t epoch, std::int64_t step,
                                        std::int64_t offset) {
  BRAID_CHECK(offset >= 0 && offset <= samples_, "epoch offset ", offset, " of ", samples_);
  BRAID_CHECK(epoch >= 0 && step >= 0 && step < steps_in_epoch(offset), "epoch ", epoch, " step ",
              step, " of ", steps_in_epoch(offset));
  if (epoch != cached_epoch_) {
    // mt19937_64 and our own Fisher-Yates (not std::uniform_int_distribution, whose output is
    // implementation-defined, nor at::randperm) keep the order identical on every platform and
    // LibTorch version, so a resumed run reads the same samples.
    std::mt19937_64 rng(seed_ * 1000003ULL + static_cast<std::uint64_t>(epoch));
    permutation_ = at::empty({samples_}, at::kLong);
    std::int64_t* p = permutation_.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < samples_; ++i) p[i] = i;
    for (std::int64_t i = samples_ - 1; i > 0; --i) {
      // Modulo bias is below 2^-40 for any data set that fits in memory.
      const auto j = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(i + 1));
      std::swap(p[i], p[j]);
    }
    cached_epoch_ = epoch;
  }
  return permutation_;
}

at::Tensor eval_indices(std::int64_t samples, int rank, int world) {
  BRAID_CHECK(world > 0 && rank >= 0 && rank < world, "rank ", rank, " of world ", world);
  const std::int64_t count = samples > rank ? (samples - rank + world - 1) / world : 0;
  at::Tensor indices = at::empty({count}, at::kLong);
  std::int64_t* p = indices.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < count; ++i) p[i] = rank + i * world;
  return indices;
}

}  // namespace braid
