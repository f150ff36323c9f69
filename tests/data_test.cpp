#include "runtime/data.h"

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"

namespace braid {
namespace {

namespace fs = std::filesystem;

const fs::path kFashion = "/usr/share/datasets/fashion-mnist";

// A fresh directory removed at scope exit.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("braid_data_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_gz(const fs::path& path, const std::string& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  gzclose(gz);
}

std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// Writes a small valid Fashion-MNIST copy: pixel j of image i is (i + j) % 256, label i % 10.
void write_fashion(const fs::path& dir, std::uint32_t train = 12, std::uint32_t test = 5) {
  for (const auto& [prefix, n] :
       {std::pair<std::string, std::uint32_t>{"train", train}, {"t10k", test}}) {
    std::string pixels, labels;
    for (std::uint32_t i = 0; i < n; ++i) {
      for (std::uint32_t j = 0; j < 784; ++j) pixels += static_cast<char>((i + j) % 256);
      labels += static_cast<char>(i % 10);
    }
    write_gz(dir / (prefix + "-images-idx3-ubyte.gz"),
             be32(2051) + be32(n) + be32(28) + be32(28) + pixels);
    write_gz(dir / (prefix + "-labels-idx1-ubyte.gz"), be32(2049) + be32(n) + labels);
  }
}

DataConfig text_config(const fs::path& path) {
  DataConfig data;
  data.name = "text";
  data.path = path.string();
  return data;
}

// Loads expecting a ConfigError; returns its message.
std::string load_error(const DataConfig& data, const ModelConfig& model = {}) {
  try {
    load_data(data, model);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError";
  return "";
}

DataConfig fashion_config(const fs::path& path = kFashion) {
  DataConfig data;
  data.name = "fashion_mnist";
  data.path = path.string();
  return data;
}

class FashionMnistTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { full_ = new DataSplits(load_data(fashion_config(), {})); }
  static void TearDownTestSuite() {
    delete full_;
    full_ = nullptr;
  }
  static DataSplits* full_;
};
DataSplits* FashionMnistTest::full_ = nullptr;

TEST_F(FashionMnistTest, ShapesTypesAndLabels) {
  const DataSplits& d = *full_;
  EXPECT_EQ(d.num_classes, 10);
  EXPECT_EQ(d.train.size(), 60000);
  EXPECT_EQ(d.test.size(), 10000);
  EXPECT_EQ(d.train.inputs.sizes(), (std::vector<std::int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(d.test.inputs.sizes(), (std::vector<std::int64_t>{10000, 1, 28, 28}));
  EXPECT_EQ(d.train.inputs.scalar_type(), at::kFloat);
  EXPECT_EQ(d.train.targets.scalar_type(), at::kLong);
  EXPECT_EQ(d.test.targets.sizes(), (std::vector<std::int64_t>{10000}));
  for (const Dataset* split : {&d.train, &d.test}) {
    EXPECT_EQ(split->targets.min().item<std::int64_t>(), 0);
    EXPECT_EQ(split->targets.max().item<std::int64_t>(), 9);
  }
  // Normalized with the training set's own mean and std.
  EXPECT_NEAR(d.train.inputs.mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(d.train.inputs.std().item<double>(), 1.0, 0.01);
  EXPECT_NEAR(d.train.inputs.min().item<double>(), -0.2860 / 0.3530, 1e-5);
}

TEST_F(FashionMnistTest, LimitsTakeTheFirstSamples) {
  DataConfig data = fashion_config();
  data.train_limit = 100;
  data.test_limit = 20000;  // more than there are: all of them
  const DataSplits d = load_data(data, {});
  EXPECT_EQ(d.train.size(), 100);
  EXPECT_EQ(d.test.size(), 10000);
  EXPECT_TRUE(d.train.inputs.equal(full_->train.inputs.narrow(0, 0, 100)));
  EXPECT_TRUE(d.train.targets.equal(full_->train.targets.narrow(0, 0, 100)));
}

TEST(FashionMnist, SmallCopyExactValues) {
  TempDir dir;
  write_fashion(dir.path());
  DataConfig data = fashion_config(dir.path());
  data.test_limit = 3;
  const DataSplits d = load_data(data, {});
  ASSERT_EQ(d.train.size(), 12);
  ASSERT_EQ(d.test.size(), 3);
  EXPECT_NEAR(d.train.inputs[2][0][0][0].item<double>(), (2 / 255.0 - 0.2860) / 0.3530, 1e-5);
  EXPECT_NEAR(d.train.inputs[0][0][9][3].item<double>(), (255 / 255.0 - 0.2860) / 0.3530, 1e-5);
  EXPECT_EQ(d.train.targets[11].item<std::int64_t>(), 1);
}

TEST(FashionMnist, TruncatedGzipNamesTheFile) {
  TempDir dir;
  const std::string name = "train-labels-idx1-ubyte.gz";
  write_fashion(dir.path());
  const std::string whole = read_file(dir.path() / name);
  write_file(dir.path() / name, whole.substr(0, whole.size() / 2));
  const std::string message = load_error(fashion_config(dir.path()));
  EXPECT_NE(message.find("data.path"), std::string::npos) << message;
  EXPECT_NE(message.find(dir.path().string()), std::string::npos) << message;
  EXPECT_NE(message.find(name), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST(FashionMnist, ShortPayloadNamesTheFile) {
  TempDir dir;
  const std::string name = "t10k-labels-idx1-ubyte.gz";
  write_fashion(dir.path());
  write_gz(dir.path() / name, be32(2049) + be32(5) + std::string(4, '\1'));
  const std::string message = load_error(fashion_config(dir.path()));
  EXPECT_NE(message.find(name), std::string::npos) << message;
  EXPECT_NE(message.find("5 data bytes"), std::string::npos) << message;
}

TEST(FashionMnist, BadMagicNamesTheFile) {
  TempDir dir;
  const std::string name = "t10k-labels-idx1-ubyte.gz";
  write_fashion(dir.path());
  write_gz(dir.path() / name, be32(2051) + be32(1) + "\1");
  const std::string message = load_error(fashion_config(dir.path()));
  EXPECT_NE(message.find(name), std::string::npos) << message;
  EXPECT_NE(message.find("magic"), std::string::npos) << message;
}

TEST(FashionMnist, LabelOutOfRange) {
  TempDir dir;
  const std::string name = "t10k-labels-idx1-ubyte.gz";
  write_fashion(dir.path());
  write_gz(dir.path() / name, be32(2049) + be32(5) + std::string(5, '\12'));
  const std::string message = load_error(fashion_config(dir.path()));
  EXPECT_NE(message.find(name), std::string::npos) << message;
  EXPECT_NE(message.find("label 10"), std::string::npos) << message;
}

TEST(FashionMnist, LabelCountMismatch) {
  TempDir dir;
  const std::string name = "t10k-labels-idx1-ubyte.gz";
  write_fashion(dir.path());
  write_gz(dir.path() / name, be32(2049) + be32(4) + std::string(4, '\1'));
  const std::string message = load_error(fashion_config(dir.path()));
  EXPECT_NE(message.find(name), std::string::npos) << message;
  EXPECT_NE(message.find("4 labels for 5 images"), std::string::npos) << message;
}

TEST(FashionMnist, MissingFileAndMissingDirectory) {
  TempDir dir;
  write_fashion(dir.path());
  fs::remove(dir.path() / "t10k-images-idx3-ubyte.gz");
  std::string message = load_error(fashion_config(dir.path()));
  EXPECT_NE(message.find("data.path"), std::string::npos) << message;
  EXPECT_NE(message.find("t10k-images-idx3-ubyte.gz"), std::string::npos) << message;
  EXPECT_NE(message.find("missing"), std::string::npos) << message;

  message = load_error(fashion_config(dir.path() / "nowhere"));
  EXPECT_NE(message.find("data.path"), std::string::npos) << message;
  EXPECT_NE(message.find("nowhere"), std::string::npos) << message;
}

// Expects a ConfigError from check_data; returns its message.
std::string check_error(const DataConfig& data) {
  try {
    check_data(data);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError from check_data";
  return "";
}

void expect_contains(const std::string& message, const std::vector<std::string>& parts) {
  for (const std::string& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
  }
}

TEST(FashionMnist, WrongPathSaysWhatWasExpected) {
  TempDir dir;
  write_file(dir.path() / "file", "x");
  const std::vector<std::string> expected = {
      "data.name fashion_mnist", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
      "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
  for (const fs::path& path : {dir.path() / "file", dir.path() / "nowhere", dir.path()}) {
    const std::string message = load_error(fashion_config(path));
    expect_contains(message, {"data.path '" + path.string() + "'"});
    expect_contains(message, expected);
    EXPECT_EQ(check_error(fashion_config(path)), message);
  }
  expect_contains(load_error(fashion_config(dir.path() / "file")), {"not a directory"});
  expect_contains(load_error(fashion_config(dir.path() / "nowhere")), {"does not exist"});
}

TEST(CheckData, AcceptsWhatLoadsWithoutReadingIt) {
  TempDir dir;
  write_fashion(dir.path());
  check_data(fashion_config(dir.path()));
  // A truncated file is found by loading, not by the cheap check.
  write_file(dir.path() / "train-labels-idx1-ubyte.gz", "\x1f\x8b");
  check_data(fashion_config(dir.path()));
  expect_contains(load_error(fashion_config(dir.path())), {"train-labels-idx1-ubyte.gz"});
  if (fs::is_directory("/usr/share/games/fortunes")) {
    check_data(text_config("/usr/share/games/fortunes"));
  }
}

TEST(LoadData, UnknownNameAndNegativeLimit) {
  DataConfig data;
  data.name = "imagenet";
  EXPECT_NE(load_error(data).find("data.name"), std::string::npos);
  data = fashion_config();
  data.train_limit = -1;
  EXPECT_NE(load_error(data).find("data.train_limit"), std::string::npos);
}

ModelConfig text_model(std::int64_t context) {
  ModelConfig model;
  model.name = "char_transformer";
  model.context = context;
  return model;
}

std::string as_string(const at::Tensor& row) {
  std::string s;
  for (std::int64_t i = 0; i < row.numel(); ++i)
    s += static_cast<char>(row[i].item<std::int64_t>());
  return s;
}

TEST(TextData, SortedFilesWindowsAndSplit) {
  TempDir dir;
  // 20 bytes of "a" then "b" (sorted), the index and .u8 copies skipped.
  write_file(dir.path() / "b", "klmnopqrst");
  write_file(dir.path() / "a", "abcdefghij");
  write_file(dir.path() / "a.dat", "XXXX");
  write_file(dir.path() / "a.u8", "YYYY");
  fs::create_directory(dir.path() / "off");
  DataConfig data = text_config(dir.path());
  data.test_fraction = 0.25;  // train "abcdefghijklmno", test "pqrst"
  const DataSplits d = load_data(data, text_model(4));
  EXPECT_EQ(d.num_classes, 256);
  ASSERT_EQ(d.train.size(), 3);  // (15 - 1) / 4
  ASSERT_EQ(d.test.size(), 1);   // (5 - 1) / 4
  EXPECT_EQ(d.train.inputs.scalar_type(), at::kLong);
  EXPECT_EQ(d.train.targets.scalar_type(), at::kLong);
  EXPECT_EQ(d.train.inputs.sizes(), (std::vector<std::int64_t>{3, 4}));
  EXPECT_EQ(as_string(d.train.inputs[0]), "abcd");
  EXPECT_EQ(as_string(d.train.targets[0]), "bcde");
  EXPECT_EQ(as_string(d.train.inputs[2]), "ijkl");
  EXPECT_EQ(as_string(d.train.targets[2]), "jklm");
  EXPECT_EQ(as_string(d.test.inputs[0]), "pqrs");
  EXPECT_EQ(as_string(d.test.targets[0]), "qrst");

  data.train_limit = 2;
  data.test_limit = 5;
  const DataSplits limited = load_data(data, text_model(4));
  EXPECT_EQ(limited.train.size(), 2);
  EXPECT_EQ(limited.test.size(), 1);
  EXPECT_TRUE(limited.train.inputs.equal(d.train.inputs.narrow(0, 0, 2)));
}

TEST(TextData, FortunesCorpus) {
  const fs::path dir = "/usr/share/games/fortunes";
  if (!fs::is_directory(dir)) GTEST_SKIP() << "fortunes not installed";
  std::int64_t total = 0;
  std::string first_name = "~";
  for (const auto& entry : fs::directory_iterator(dir)) {
    const fs::path& p = entry.path();
    if (entry.is_regular_file() && p.extension() != ".dat" && p.extension() != ".u8") {
      total += static_cast<std::int64_t>(entry.file_size());
      first_name = std::min(first_name, p.filename().string());
    }
  }
  const std::int64_t context = 64;
  const DataSplits d = load_data(text_config(dir), text_model(context));
  const auto test_bytes = static_cast<std::int64_t>(static_cast<double>(total) * 0.05);
  EXPECT_EQ(d.train.size(), (total - test_bytes - 1) / context);
  EXPECT_EQ(d.test.size(), (test_bytes - 1) / context);
  EXPECT_EQ(as_string(d.train.inputs[0]), read_file(dir / first_name).substr(0, context));
  // Each target row is its input row shifted by one; the last target starts the next window.
  const std::int64_t n = d.train.size();
  EXPECT_TRUE(
      d.train.targets.narrow(1, 0, context - 1).equal(d.train.inputs.narrow(1, 1, context - 1)));
  EXPECT_TRUE(d.train.targets.select(1, context - 1)
                  .narrow(0, 0, n - 1)
                  .equal(d.train.inputs.select(1, 0).narrow(0, 1, n - 1)));
}

TEST(TextData, MissingOrEmptyDirectory) {
  TempDir dir;
  std::string message = load_error(text_config(dir.path()), text_model(8));
  EXPECT_NE(message.find("data.path"), std::string::npos) << message;
  write_file(dir.path() / "only.dat", "x");
  message = load_error(text_config(dir.path()), text_model(8));
  expect_contains(message, {"data.path", "no text files", "expected a text file"});
  message = load_error(text_config(dir.path() / "nowhere"), text_model(8));
  EXPECT_NE(message.find("data.path"), std::string::npos) << message;
}

// Changing data.name to text while data.path still names Fashion-MNIST must not train on the
// gzip bytes of the images.
TEST(TextData, RefusesFashionMnistAndBinaryFiles) {
  TempDir fashion;
  write_fashion(fashion.path());
  std::string message = load_error(text_config(fashion.path()), text_model(8));
  expect_contains(message, {"data.path '" + fashion.path().string() + "'", "data.name text",
                            "Fashion-MNIST idx files", "expected a text file"});
  EXPECT_EQ(check_error(text_config(fashion.path())), message);

  TempDir mixed;
  write_file(mixed.path() / "a", "some text\n");
  write_file(mixed.path() / "b.bin", std::string("ab\0cd", 5));
  message = load_error(text_config(mixed.path()), text_model(8));
  expect_contains(message, {"data.name text", "b.bin is not a text file", "expected a text file"});
  EXPECT_EQ(check_error(text_config(mixed.path())), message);

  message = load_error(text_config(fashion.path() / "t10k-labels-idx1-ubyte.gz"), text_model(8));
  expect_contains(message, {"not a text file", "expected a text file"});
}

TEST(TextData, SingleFile) {
  TempDir dir;
  write_file(dir.path() / "corpus.txt", "abcdefghijklmnopqrst");
  write_file(dir.path() / "other", "zzzzzzzzzzzzzzzzzzzz");
  DataConfig data = text_config(dir.path() / "corpus.txt");
  data.test_fraction = 0.25;
  check_data(data);
  const DataSplits d = load_data(data, text_model(4));
  ASSERT_EQ(d.train.size(), 3);
  ASSERT_EQ(d.test.size(), 1);
  EXPECT_EQ(as_string(d.train.inputs[0]), "abcd");
  EXPECT_EQ(as_string(d.test.targets[0]), "qrst");
}

std::vector<std::int64_t> to_vector(const at::Tensor& t) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(t.numel()));
  for (std::int64_t i = 0; i < t.numel(); ++i)
    v[static_cast<std::size_t>(i)] = t[i].item<std::int64_t>();
  return v;
}

TEST(DataPlan, RanksSplitTheOneRankBatch) {
  const std::int64_t samples = 1000;
  for (int world : {1, 2, 3, 5, 7, 16}) {
    for (std::int64_t batch : {1, 4, 9}) {
      if (world * batch > samples) continue;
      DataPlan single(samples, 0, 1, world * batch, 7);
      std::vector<DataPlan> ranks;
      for (int r = 0; r < world; ++r) ranks.emplace_back(samples, r, world, batch, 7);
      ASSERT_EQ(ranks[0].steps_per_epoch(), single.steps_per_epoch());
      for (std::int64_t epoch : {0, 3}) {
        std::set<std::int64_t> seen;  // across the epoch, so also across steps
        for (std::int64_t step = 0; step < single.steps_per_epoch(); ++step) {
          std::vector<std::int64_t> joined;
          for (auto& plan : ranks) {
            const at::Tensor idx = plan.batch_indices(epoch, step);
            ASSERT_EQ(idx.scalar_type(), at::kLong);
            ASSERT_EQ(idx.numel(), batch);
            for (std::int64_t i : to_vector(idx)) {
              EXPECT_TRUE(seen.insert(i).second) << "index " << i << " read twice";
              EXPECT_TRUE(i >= 0 && i < samples);
              joined.push_back(i);
            }
          }
          ASSERT_EQ(joined, to_vector(single.batch_indices(epoch, step)))
              << "world " << world << " batch " << batch << " step " << step;
        }
      }
    }
  }
}

// Strategies name partitions of the global batch (assign_batch): partition r is what rank r
// reads by default, whichever rank asks for it; a partition out of range is refused.
TEST(DataPlan, PartitionsAreTheRanksDefaultShards) {
  std::vector<DataPlan> ranks;
  for (int r = 0; r < 3; ++r) ranks.emplace_back(200, r, 3, 8, 11);
  for (int partition = 0; partition < 3; ++partition) {
    EXPECT_EQ(to_vector(ranks[0].partition_indices(1, 2, partition)),
              to_vector(ranks[partition].batch_indices(1, 2)));
  }
  EXPECT_THROW(ranks[0].partition_indices(0, 0, 3), CheckError);
}

TEST(DataPlan, ShuffleDependsOnSeedAndEpochOnly) {
  DataPlan a(500, 0, 1, 500, 42), b(500, 0, 1, 500, 42), c(500, 0, 1, 500, 43);
  const auto a0 = to_vector(a.batch_indices(0, 0));
  const auto a1 = to_vector(a.batch_indices(1, 0));
  EXPECT_NE(a0, a1);
  EXPECT_EQ(to_vector(b.batch_indices(1, 0)), a1);
  EXPECT_EQ(to_vector(b.batch_indices(0, 0)), a0);
  EXPECT_EQ(to_vector(a.batch_indices(0, 0)), a0);  // back to an earlier epoch
  EXPECT_NE(to_vector(c.batch_indices(0, 0)), a0);
  std::vector<std::int64_t> sorted = a0;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < 500; ++i) EXPECT_EQ(sorted[static_cast<std::size_t>(i)], i);
}

TEST(DataPlan, StepsPerEpochDropsTheLastPartialBatch) {
  EXPECT_EQ(DataPlan(1000, 0, 3, 7, 1).steps_per_epoch(), 47);  // 1000 / 21
  EXPECT_EQ(DataPlan(1000, 2, 3, 7, 1).steps_per_epoch(), 47);
  EXPECT_EQ(DataPlan(21, 0, 3, 7, 1).steps_per_epoch(), 1);
  EXPECT_EQ(DataPlan(60000, 0, 4, 64, 1).steps_per_epoch(), 234);
  try {
    DataPlan(20, 0, 3, 7, 1);
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("too small"), std::string::npos) << e.what();
  }
}

TEST(EvalIndices, StridedShards) {
  EXPECT_EQ(to_vector(eval_indices(10, 0, 3)), (std::vector<std::int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(to_vector(eval_indices(10, 1, 3)), (std::vector<std::int64_t>{1, 4, 7}));
  EXPECT_EQ(to_vector(eval_indices(10, 2, 3)), (std::vector<std::int64_t>{2, 5, 8}));
  EXPECT_EQ(eval_indices(2, 3, 4).numel(), 0);
  EXPECT_EQ(eval_indices(0, 0, 1).scalar_type(), at::kLong);
  EXPECT_EQ(to_vector(eval_indices(3, 0, 1)), (std::vector<std::int64_t>{0, 1, 2}));
}

}  // namespace
}  // namespace braid
