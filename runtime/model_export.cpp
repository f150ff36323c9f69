#include "runtime/model_export.h"

#include <ATen/core/Dict.h>
#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/nn/module.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "common/error.h"

namespace braid {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void throw_errno(const char* what, const fs::path& path) {
  throw Error(str_cat("cannot ", what, " ", path.string(),
                      " (exporting the model): ", std::strerror(errno)));
}

// Closes the descriptor on every path out, keeping errno of the call that failed.
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    const int saved = errno;
    if (fd >= 0) ::close(fd);
    errno = saved;
  }
};

// Temporary file, fsync, rename, fsync of the directory: readers see the old file or the whole
// new one, also after a crash. (The same steps as the checkpoint writer's.)
void write_durably(const fs::path& path, const std::vector<char>& bytes) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    FileDescriptor file{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    if (file.fd < 0) throw_errno("create", tmp);
    for (std::size_t done = 0; done < bytes.size();) {
      const ssize_t n = ::write(file.fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("write", tmp);
      done += static_cast<std::size_t>(n);
    }
    if (::fsync(file.fd) != 0) throw_errno("fsync", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw_errno("rename into place", tmp);
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  FileDescriptor parent{::open(dir.c_str(), O_RDONLY | O_CLOEXEC)};
  if (parent.fd < 0) throw_errno("open", dir);
  if (::fsync(parent.fd) != 0) throw_errno("fsync", dir);
}

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
  write_durably(path, pickle_without_type_tags(weights));
}

}  // namespace braid
