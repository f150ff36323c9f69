// train.init_from: a new run starts from weights trained elsewhere (fine-tuning; local-update
// methods started from a synchronously pre-trained model, as DiLoCo's paper measures them).
//
// The source is a state dict file (braid's model.pt, or any torch.save(module.state_dict()) of
// the same names and shapes; runtime/state_dict_file.h) or a braid checkpoint (a run directory,
// its checkpoints/ directory, a step directory or one rank's file: weights only, rank 0's file
// of the step `latest` names; the optimizer and the strategy start fresh). The match is strict,
// as PyTorch's load_state_dict(strict=True): every parameter and buffer of the model must be in
// the file with the same shape, and the file must hold nothing else; values are converted to
// the model's dtype (a float32 file starts a float64 model). A mismatch is a ConfigError naming
// the file and the first name that differs, before training; nothing is written.
#pragma once

#include <string>

namespace torch::nn {
class Module;
}

namespace braid {

// Local: every rank reads the file (as it reads model.path and data.path). Returns the number
// of tensors copied into `model`.
int load_initial_weights(torch::nn::Module& model, const std::string& path);

}  // namespace braid
