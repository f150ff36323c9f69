// Reading state dicts (runtime/state_dict_file.h) and starting a model from one
// (runtime/initial_weights.h). Python's own torch.save(module.state_dict()) files are read in
// tests/init_from_test.py; here: braid's model.pt round trip, hand-written pickles that probe
// each check (a view one element past its storage, a storage record of the wrong size, a
// pickled object, a nested dict), every truncation and many corruptions of a real file (an
// error or a state dict, never a crash or another exception), and the strict name and shape
// match of train.init_from, which leaves the model untouched when it refuses.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/error.h"
#include "runtime/initial_weights.h"
#include "runtime/model_export.h"
#include "runtime/state_dict_file.h"

namespace braid {
namespace {

namespace fs = std::filesystem;

struct Net : torch::nn::Module {
  explicit Net(int hidden = 3) {
    register_module("fc", torch::nn::Linear(2, hidden));
    register_module("bn", torch::nn::BatchNorm1d(hidden));
  }
};

class StateDictFile : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("braid-state-dict-" + std::string(info->name()) + "-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // An archive as torch.save lays it out: data.pkl and the storage records data/<key>.
  std::string write_archive(const std::string& name, const std::string& pickle,
                            const std::vector<std::pair<std::string, std::string>>& records) {
    const std::string path = (dir_ / name).string();
    caffe2::serialize::PyTorchStreamWriter writer(path);
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
    for (const auto& [key, bytes] : records) {
      writer.writeRecord("data/" + key, bytes.data(), bytes.size());
    }
    writer.writeEndOfFile();
    return path;
  }

  fs::path dir_;
};

// The pickle Python writes for {"w": tensor}: one float storage "0" of `numel` elements, viewed
// at `offset` with size (3,) and stride (1,), and `global` as the tensor's rebuild function.
std::string one_tensor_pickle(int numel, int offset,
                              const std::string& global = "torch._utils\n_rebuild_tensor_v2\n") {
  std::string p = "\x80\x02}";  // PROTO 2, EMPTY_DICT
  p += std::string("X\x01\x00\x00\x00w", 6);
  p += "c" + global + "((X" + std::string("\x07\x00\x00\x00", 4) + "storage";
  p += "ctorch\nFloatStorage\nX" + std::string("\x01\x00\x00\x00", 4) + "0";
  p += "X" + std::string("\x03\x00\x00\x00", 4) + "cpuK" + std::string(1, char(numel)) + "tQ";
  p += "K" + std::string(1, char(offset)) + "K\x03\x85K\x01\x85\x89NtRs.";
  return p;
}

std::string floats(int n) {
  std::vector<float> values(n);
  for (int i = 0; i < n; ++i) values[i] = 0.5f * i;
  return std::string(reinterpret_cast<const char*>(values.data()), n * sizeof(float));
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(StateDictFile, ReadsBraidsModelFileBitwiseInModelOrder) {
  torch::manual_seed(1);
  Net net;
  const std::string path = (dir_ / "model.pt").string();
  export_model(net, path);

  const StateDict read = read_state_dict(path);

  std::vector<std::pair<std::string, at::Tensor>> expected;
  for (const auto& item : net.named_parameters()) expected.emplace_back(item.key(), item.value());
  for (const auto& item : net.named_buffers()) expected.emplace_back(item.key(), item.value());
  ASSERT_EQ(read.size(), expected.size());
  for (std::size_t i = 0; i < read.size(); ++i) {
    EXPECT_EQ(read[i].first, expected[i].first);
    EXPECT_EQ(read[i].second.scalar_type(), expected[i].second.scalar_type()) << read[i].first;
    EXPECT_TRUE(torch::equal(read[i].second, expected[i].second)) << read[i].first;
  }
}

TEST_F(StateDictFile, ViewMustLieInsideItsStorage) {
  const std::string inside =
      write_archive("inside.pt", one_tensor_pickle(4, 1), {{"0", floats(4)}});
  const StateDict read = read_state_dict(inside);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_TRUE(torch::equal(read[0].second, torch::tensor({0.5f, 1.0f, 1.5f})));

  // One element further: the last element would be storage element 4 of 0..3.
  const std::string outside =
      write_archive("outside.pt", one_tensor_pickle(4, 2), {{"0", floats(4)}});
  EXPECT_NE(error_of([&] { read_state_dict(outside); }).find("outside its storage"),
            std::string::npos);
}

TEST_F(StateDictFile, StorageRecordMustHaveTheSizeThePickleSays) {
  const std::string path = write_archive("short.pt", one_tensor_pickle(4, 0), {{"0", floats(3)}});
  const std::string error = error_of([&] { read_state_dict(path); });
  EXPECT_NE(error.find("has 12 bytes, expected 16"), std::string::npos) << error;
  EXPECT_NE(error.find(path), std::string::npos) << error;
}

TEST_F(StateDictFile, PickledObjectsAreRefusedNotRun) {
  const std::string path = write_archive(
      "object.pt", one_tensor_pickle(4, 0, "__torch__.Net\nforward\n"), {{"0", floats(4)}});
  EXPECT_NE(error_of([&] { read_state_dict(path); }).find("__torch__.Net.forward"),
            std::string::npos);
}

TEST_F(StateDictFile, NestedDictionaryNamesTheEntry) {
  // {"model": {}}
  const std::string pickle = std::string("\x80\x02}X\x05\x00\x00\x00model}s.", 16);
  const std::string path = write_archive("nested.pt", pickle, {});
  EXPECT_NE(error_of([&] { read_state_dict(path); }).find("entry 'model'"), std::string::npos);
}

TEST_F(StateDictFile, NotAnArchiveIsAnErrorNamingTheFile) {
  const std::string path = (dir_ / "text.pt").string();
  std::ofstream(path) << "not a zip archive\n";
  const std::string error = error_of([&] { read_state_dict(path); });
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("not a zip archive"), std::string::npos) << error;
}

// A peer's file is not trusted: every prefix of a real pickle and every byte of it replaced by
// an opcode or by garbage gives an Error or a state dict, never a crash or another exception.
TEST_F(StateDictFile, TruncatedOrCorruptedPicklesAreErrors) {
  Net net;
  const std::string model = (dir_ / "model.pt").string();
  export_model(net, model);
  caffe2::serialize::PyTorchStreamReader reader(model);
  const auto [data, size] = reader.getRecord("data.pkl");
  const std::string pickle(static_cast<const char*>(data.get()), size);
  std::vector<std::pair<std::string, std::string>> records;
  for (const std::string& name : reader.getAllRecords()) {
    if (name.rfind("data/", 0) == 0) {
      const auto [bytes, length] = reader.getRecord(name);
      records.emplace_back(name.substr(5),
                           std::string(static_cast<const char*>(bytes.get()), length));
    }
  }
  int errors = 0;
  for (std::size_t cut = 0; cut < pickle.size(); ++cut) {
    const std::string path = write_archive("cut.pt", pickle.substr(0, cut), records);
    errors += !error_of([&] { read_state_dict(path); }).empty();
  }
  EXPECT_EQ(errors, static_cast<int>(pickle.size())) << "a truncated pickle was accepted";
  for (std::size_t at = 0; at < pickle.size(); ++at) {
    for (const char byte : {'\xff', 'h', 'R', 'Q', 'u', '(', '\x00', '\x7f'}) {
      std::string corrupt = pickle;
      corrupt[at] = byte;
      const std::string path = write_archive("corrupt.pt", corrupt, records);
      EXPECT_NO_THROW(error_of([&] { read_state_dict(path); })) << "byte " << at;
    }
  }
}

TEST_F(StateDictFile, InitialWeightsCopyEveryParameterAndBuffer) {
  torch::manual_seed(1);
  Net source;
  {
    torch::NoGradGuard no_grad;
    source.named_buffers()["bn.running_mean"].fill_(0.25);
  }
  const std::string path = (dir_ / "model.pt").string();
  export_model(source, path);
  torch::manual_seed(2);
  Net target;
  target.to(torch::kFloat64);  // a float32 file starts a float64 model

  EXPECT_EQ(load_initial_weights(target, path), 7);

  for (const auto& item : source.named_parameters()) {
    const at::Tensor got = target.named_parameters()[item.key()];
    EXPECT_EQ(got.scalar_type(), at::kDouble);
    EXPECT_TRUE(torch::equal(got, item.value().to(at::kDouble))) << item.key();
  }
  EXPECT_TRUE(torch::equal(target.named_buffers()["bn.running_mean"],
                           torch::full({3}, 0.25, torch::kFloat64)));
}

TEST_F(StateDictFile, InitialWeightsRefuseAMismatchAndLeaveTheModelAlone) {
  const std::string wider = (dir_ / "wider.pt").string();
  export_model(Net(4), wider);
  torch::nn::Module extra;
  extra.register_module("fc", torch::nn::Linear(2, 3));
  extra.register_module("bn", torch::nn::BatchNorm1d(3));
  extra.register_parameter("head", torch::zeros({1}));
  const std::string more = (dir_ / "more.pt").string();
  export_model(extra, more);
  torch::nn::Module fewer;
  fewer.register_module("fc", torch::nn::Linear(2, 3));
  const std::string less = (dir_ / "less.pt").string();
  export_model(fewer, less);
  Net net;
  const at::Tensor before = net.named_parameters()["fc.weight"].clone();

  const auto refusal = [&](const std::string& path) {
    try {
      load_initial_weights(net, path);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string shape = refusal(wider);
  EXPECT_NE(shape.find("'fc.weight' is [4, 2] in the file but [3, 2] in the model"),
            std::string::npos)
      << shape;
  EXPECT_NE(shape.find("train.init_from: " + wider), std::string::npos) << shape;
  EXPECT_NE(refusal(more).find("has 'head', which the model lacks"), std::string::npos);
  EXPECT_NE(refusal(less).find("has no 'bn.weight'"), std::string::npos) << refusal(less);
  EXPECT_NE(refusal((dir_ / "missing.pt").string()).find("no such file"), std::string::npos);
  EXPECT_TRUE(torch::equal(net.named_parameters()["fc.weight"], before));
}

}  // namespace
}  // namespace braid
