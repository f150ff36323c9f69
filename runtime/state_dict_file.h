// Reading a state dict that Python's torch.save wrote: `torch.save(model.state_dict(), path)`,
// braid's own model.pt, or any torch.save of a dictionary of name -> tensor.
//
// LibTorch has no reader for it: torch::pickle_load turns the collections.OrderedDict a
// state_dict() is into None (the unpickler assumes an OrderedDict is a tensor's backward hooks)
// and then fails. So braid interprets the pickle itself, a strict subset: the opcodes
// Python's pickler (protocols 2 to 5) writes for a dict of tensors, and the globals
// collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter
// and torch.<Type>Storage. The zip archive and the tensor records are read with LibTorch's
// PyTorchStreamReader. Anything else (a TorchScript module, a pickled class, a nested dict such
// as {"model": ..., "optimizer": ...}) is refused naming what was found, never executed.
//
// Nothing in the file is trusted: every length, memo index, storage size, offset, size and
// stride is checked before use, and a tensor is a copy with its own storage (never a view
// into a record). Errors are braid::Error with the path and what is wrong.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace braid {

using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

// The entries in the file's order (the order of state_dict(): registration order).
StateDict read_state_dict(const std::string& path);

}  // namespace braid
