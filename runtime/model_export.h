// Model export: the trained weights as a file that Python's torch.load reads, so a model trained
// with braid can be evaluated, fine-tuned or served from PyTorch.
//
// The file is a name -> tensor dictionary in the format torch.save writes for a state dict (a
// zip archive holding a pickled plain dict; torch.load(weights_only=True), the default since
// PyTorch 2.6, and torch::pickle_load read it): every parameter and every buffer (running
// statistics too), under the dotted names module.named_parameters()/named_buffers() give
// ("conv1.weight", "blocks.0.ln1.bias"), so `python_module.load_state_dict(torch.load(path))`
// works for a PyTorch module whose submodules carry the same names. Tensors are detached CPU
// copies with their own tight storage: a parameter that is a view into a flat gradient bucket
// does not drag the whole bucket into the file.
//
// Written durably (temporary file, fsync, rename, fsync of the directory): a reader sees the
// previous file or the complete new one, also after a crash. Not collective: call it on one
// rank (replicas are identical). A failure to write throws braid::Error naming the path.
#pragma once

#include <string>

namespace torch::nn {
class Module;
}

namespace braid {

void export_model(const torch::nn::Module& model, const std::string& path);

}  // namespace braid
