// Model export: the file read back with torch::pickle_load holds exactly the module's
// parameters and buffers under their dotted names, bit for bit (NaN and -0.0 included, and
// non-float dtypes), in a plain dict without TorchScript type tags; a parameter that views a
// large buffer is stored alone; a rewrite replaces the file and leaves no temporary behind; an
// unwritable path is an error naming it. ModelExport.SampleForPython writes the file that
// tests/model_export_torch_load.sh hands to Python's torch.load (to $BRAID_MODEL_EXPORT_SAMPLE
// when set).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "common/error.h"
#include "runtime/model_export.h"

namespace braid {
namespace {

namespace fs = std::filesystem;

// Linear, BatchNorm (running statistics and an int64 counter as buffers) and a nested list: the
// names Python's load_state_dict expects for the same structure.
struct Sample : torch::nn::Module {
  Sample() {
    register_module("fc", torch::nn::Linear(3, 2));
    register_module("bn", torch::nn::BatchNorm1d(2));
    auto blocks = register_module("blocks", torch::nn::ModuleList());
    blocks->push_back(torch::nn::Linear(2, 2));
  }
};

// Every floating-point tensor holds arange(numel) * 0.125 - 1 (exact in binary), the batch
// counter 7: values Python can recompute exactly.
void fill_known_values(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& item : module.named_parameters()) {
    at::Tensor t = item.value();
    t.copy_(torch::arange(t.numel(), t.options()).reshape(t.sizes()) * 0.125 - 1);
  }
  for (auto& item : module.named_buffers()) {
    at::Tensor t = item.value();
    if (t.is_floating_point()) {
      t.copy_(torch::arange(t.numel(), t.options()).reshape(t.sizes()) * 0.125 - 1);
    } else {
      t.fill_(7);
    }
  }
}

std::map<std::string, at::Tensor> read_back(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, at::Tensor> tensors;
  for (const auto& entry : torch::pickle_load(bytes).toGenericDict()) {
    tensors[entry.key().toStringRef()] = entry.value().toTensor();
  }
  return tensors;
}

std::map<std::string, at::Tensor> expected_tensors(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> tensors;
  for (const auto& item : module.named_parameters()) tensors[item.key()] = item.value();
  for (const auto& item : module.named_buffers()) tensors[item.key()] = item.value();
  return tensors;
}

// Same names, dtypes, shapes and bytes.
void expect_bitwise_equal(const std::map<std::string, at::Tensor>& actual,
                          const std::map<std::string, at::Tensor>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [name, want] : expected) {
    ASSERT_EQ(actual.count(name), 1u) << name << " is missing from the file";
    const at::Tensor got = actual.at(name);
    const at::Tensor ref = want.contiguous();
    EXPECT_EQ(got.scalar_type(), ref.scalar_type()) << name;
    ASSERT_EQ(got.sizes(), ref.sizes()) << name;
    ASSERT_TRUE(got.is_contiguous()) << name;
    EXPECT_EQ(std::memcmp(got.data_ptr(), ref.data_ptr(), ref.nbytes()), 0) << name;
  }
}

class ModelExport : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("braid-model-export-" + std::string(info->name()) + "-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ModelExport, RoundTripsParametersAndBuffersBitwise) {
  Sample sample;
  fill_known_values(sample);
  {
    // Values a value comparison would miss or mistake.
    torch::NoGradGuard no_grad;
    auto weight = sample.named_parameters()["fc.weight"];
    weight[0][0] = std::nan("");
    weight[0][1] = -0.0;
    weight[1][2] = std::numeric_limits<float>::denorm_min();
  }
  sample.register_buffer("scale", torch::tensor({1.0 / 3.0, -2.5}, torch::kFloat64));
  const fs::path path = dir_ / "model.pt";

  export_model(sample, path.string());

  const auto tensors = read_back(path);
  for (const char* name : {"fc.weight", "fc.bias", "bn.weight", "bn.running_mean", "bn.running_var",
                           "bn.num_batches_tracked", "blocks.0.weight", "scale"}) {
    EXPECT_EQ(tensors.count(name), 1u) << name;
  }
  expect_bitwise_equal(tensors, expected_tensors(sample));
  EXPECT_EQ(tensors.at("bn.num_batches_tracked").scalar_type(), at::kLong);
  EXPECT_FALSE(tensors.at("fc.weight").requires_grad());
  // A TorchScript type tag would make torch.load(weights_only=True) refuse the file.
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes.find("restore_type_tag"), std::string::npos);
}

TEST_F(ModelExport, ViewParameterIsStoredWithoutItsBaseBuffer) {
  // As when parameters live in flat gradient buckets: 4 elements of a 4 MB buffer.
  const at::Tensor flat = torch::arange(1 << 20, torch::kFloat32);
  torch::nn::Module module;
  module.register_parameter("w", flat.narrow(0, 10, 4));
  const fs::path path = dir_ / "model.pt";

  export_model(module, path.string());

  EXPECT_LT(fs::file_size(path), 64u * 1024u);
  const auto tensors = read_back(path);
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_EQ(tensors.at("w").storage().nbytes(), 4 * sizeof(float));
  EXPECT_TRUE(torch::equal(tensors.at("w"), torch::tensor({10.f, 11.f, 12.f, 13.f})));
}

TEST_F(ModelExport, RewriteReplacesTheFileAndLeavesNoTemporary) {
  Sample sample;
  fill_known_values(sample);
  const fs::path path = dir_ / "model.pt";
  export_model(sample, path.string());
  {
    torch::NoGradGuard no_grad;
    sample.named_parameters()["fc.bias"].fill_(42);
  }

  export_model(sample, path.string());

  EXPECT_EQ(read_back(path).at("fc.bias")[1].item<float>(), 42.f);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(ModelExport, UnwritablePathIsAnErrorNamingIt) {
  Sample sample;
  const fs::path path = dir_ / "no-such-dir" / "model.pt";
  try {
    export_model(sample, path.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
}

// The file for Python's torch.load (see the script named at the top).
TEST_F(ModelExport, SampleForPython) {
  Sample sample;
  fill_known_values(sample);
  const char* target = std::getenv("BRAID_MODEL_EXPORT_SAMPLE");
  const fs::path path = target != nullptr ? fs::path(target) : dir_ / "model.pt";

  export_model(sample, path.string());

  expect_bitwise_equal(read_back(path), expected_tensors(sample));
}

}  // namespace
}  // namespace braid
