// Fragments of Streaming DiLoCo: which parameters synchronise together.
//
// The unit is a block where the model has blocks: the parameters whose names share the prefix up
// to and including their first all-digit path component ("blocks.3.q.weight" -> "blocks.3"), as
// torch::nn::ModuleList and Sequential number their children (the built-in transformer's blocks,
// a TorchScript model's indexed children). The paper's fragments are whole transformer blocks,
// so a block is never split across fragments. The parameters outside every block (embeddings,
// final norm, head) form one unit of their own. A model without blocks (mlp, cnn) has one unit
// per tensor. Units are numbered in the order of their first parameter (registration order);
// `strided` puts unit u in fragment u mod F (the paper's default: neighbouring blocks never sync
// together), `sequential` gives fragment p the units u with floor(u F / U) = p.
#pragma once

#include <string>
#include <vector>

namespace braid {

struct FragmentUnits {
  std::vector<std::string> labels;  // per unit: the block's prefix, or the tensor's name
  std::vector<int> unit_of;         // per parameter
  bool blocks = false;              // units are blocks (and the rest), not tensors
};

// strided | sequential, the names outer.fragment_pattern accepts.
const std::vector<std::string>& fragment_pattern_names();

FragmentUnits fragment_units(const std::vector<std::string>& parameter_names);

// The fragment of each parameter (names in registration order); ConfigError naming
// outer.fragments when there are fewer units than fragments.
std::vector<int> assign_fragments(const std::vector<std::string>& names, int fragments,
                                  const std::string& pattern);

// What each fragment holds, for the start-up log: "by blocks: fragment 0: [rest: tokens.weight,
// ...], blocks.1; fragment 1: blocks.0".
std::string describe_fragments(const std::vector<std::string>& names,
                               const std::vector<int>& fragment_of);

}  // namespace braid
