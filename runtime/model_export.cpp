#include "runtime/model_export.h"

#include <ATen/core/Dict.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/nn/module.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "common/error.h"
#include "runtime/durable_file.h"

namespace braid {

namespace fs = std::filesystem;

namespace {

// A CPU copy with its own storage of exactly numel elements: pickling writes a tensor's whole
// storage, and a parameter may be a view into a larger flat buffer.
at::Tensor standalone_copy(const at::Tensor& tensor) {
  return tensor.detach().to(at::kCPU).clone(at::MemoryFormat::Contiguous);
}

// torch::pickle_save(value), except that containers carry no TorchScript type tag: pickle_save
// wraps the dict in torch.jit._pickle.restore_type_tag, which torch.load(weights_only=True), the
// default since PyTorch 2.6, refuses. A plain dict of tensors is what torch.save writes for a
// state dict. Same archive layout (data.pkl, data/0, data/1, ...), same LibTorch calls as
// pickle_save in 1.13 and 2.x; torch::pickle_load reads it too.
std::vector<char> pickle_without_type_tags(const c10::IValue& value) {
  std::vector<char> pickle;
  torch::jit::Pickler pickler(
      [&](const char* bytes, std::size_t size) {
        pickle.insert(pickle.end(), bytes, bytes + size);
      },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();

  std::vector<char> archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, std::size_t size) {
    const char* bytes = static_cast<const char*>(data);
    archive.insert(archive.end(), bytes, bytes + size);
    return size;
  });
  torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(),
                                     writer);
  writer.writeEndOfFile();
  return archive;
}

}  // namespace

void export_model(const torch::nn::Module& model, const std::string& path) {
  c10::Dict<std::string, at::Tensor> weights;
  for (const auto& item : model.named_parameters()) {
    weights.insert(item.key(), standalone_copy(item.value()));
  }
  for (const auto& item : model.named_buffers()) {
    weights.insert(item.key(), standalone_copy(item.value()));
  }
  const std::vector<char> bytes = pickle_without_type_tags(weights);
  try {
    write_durably(path, bytes.data(), bytes.size());
  } catch (const Error& e) {
    throw Error(str_cat(e.what(), " (exporting the model)"));
  }
}

}  // namespace braid
