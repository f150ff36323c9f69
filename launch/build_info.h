// What `braid --version` reports: braid's version and what this binary was built with (the
// CUDA path's CUDA and NCCL versions or "CPU only", LibTorch's version, the MPI library the
// binary runs on), so that a bug report or a cluster check names them (as horovodrun
// --check-build does).
#pragma once

#include <string>

namespace braid {

std::string build_info();

}  // namespace braid
