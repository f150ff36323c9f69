// A file as a uint8 tensor over a private memory mapping (copy on write: nothing done to the
// tensor reaches the file), unmapped when the last tensor over it is gone. For data sets that
// may be larger than memory (runtime/npy_arrays.h, runtime/token_data.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <string>

namespace braid {

// Throws ConfigError "data.path '<file>' (data.name <data_name>): ..." when the file cannot be
// opened or mapped, or is empty.
at::Tensor map_file(const std::filesystem::path& file, const std::string& data_name);

}  // namespace braid
