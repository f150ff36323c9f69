#include "optimizers/fragments.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>

#include "common/error.h"

namespace braid {
namespace {

// The prefix up to and including the first all-digit path component; "" when there is none.
std::string block_of(const std::string& name) {
  std::size_t begin = 0;
  while (begin < name.size()) {
    std::size_t end = name.find('.', begin);
    if (end == std::string::npos) end = name.size();
    const bool digits = end > begin && std::all_of(name.begin() + begin, name.begin() + end,
                                                   [](unsigned char c) { return std::isdigit(c); });
    if (digits && end < name.size()) return name.substr(0, end);
    begin = end + 1;
  }
  return "";
}

constexpr const char* kRest = "rest";  // the label of the parameters outside every block

}  // namespace

const std::vector<std::string>& fragment_pattern_names() {
  static const std::vector<std::string> names = {"strided", "sequential"};
  return names;
}

FragmentUnits fragment_units(const std::vector<std::string>& parameter_names) {
  FragmentUnits units;
  std::vector<std::string> blocks;
  for (const std::string& name : parameter_names) blocks.push_back(block_of(name));
  units.blocks =
      std::any_of(blocks.begin(), blocks.end(), [](const auto& b) { return !b.empty(); });
  std::map<std::string, int> index;
  for (std::size_t i = 0; i < parameter_names.size(); ++i) {
    const std::string key = units.blocks ? blocks[i] : parameter_names[i];
    auto [it, added] = index.emplace(key, static_cast<int>(units.labels.size()));
    if (added) units.labels.push_back(key.empty() ? kRest : key);
    units.unit_of.push_back(it->second);
  }
  return units;
}

std::vector<int> assign_fragments(const std::vector<std::string>& names, int fragments,
                                  const std::string& pattern) {
  const FragmentUnits units = fragment_units(names);
  const auto count = static_cast<int>(units.labels.size());
  if (fragments > count) {
    throw ConfigError(str_cat("outer.fragments: ", fragments, " fragments but the model has only ",
                              count,
                              units.blocks ? " blocks (the rest counted as one)" : " tensors",
                              ", and a fragment holds whole ones"));
  }
  std::vector<int> fragment_of;
  for (int u : units.unit_of) {
    fragment_of.push_back(pattern == "sequential"
                              ? static_cast<int>(static_cast<std::int64_t>(u) * fragments / count)
                              : u % fragments);
  }
  return fragment_of;
}

std::string describe_fragments(const std::vector<std::string>& names,
                               const std::vector<int>& fragment_of) {
  const FragmentUnits units = fragment_units(names);
  const int fragments =
      fragment_of.empty() ? 0 : *std::max_element(fragment_of.begin(), fragment_of.end()) + 1;
  std::vector<std::vector<std::string>> held(fragments);
  std::vector<std::string> rest;  // the parameters outside every block, named
  std::vector<bool> listed(units.labels.size(), false);
  for (std::size_t i = 0; i < names.size(); ++i) {
    const int u = units.unit_of[i];
    if (units.blocks && units.labels[u] == kRest) rest.push_back(names[i]);
    if (listed[u]) continue;
    listed[u] = true;
    held[fragment_of[i]].push_back(units.labels[u]);
  }
  constexpr std::size_t kShown = 6;
  std::string out = units.blocks ? "by blocks:" : "by tensors:";
  for (int p = 0; p < fragments; ++p) {
    out += str_cat(p == 0 ? " " : "; ", "fragment ", p, ":");
    for (std::size_t k = 0; k < held[p].size(); ++k) {
      if (k == kShown) {
        out += str_cat(" ... (", held[p].size() - kShown, " more)");
        break;
      }
      std::string label = held[p][k];
      if (units.blocks && label == kRest) {
        std::vector<std::string> shown(rest.begin(), rest.begin() + std::min(rest.size(), kShown));
        label = str_cat("[rest: ", join(shown), rest.size() > kShown ? ", ...]" : "]");
      }
      out += str_cat(k == 0 ? " " : ", ", label);
    }
  }
  return out;
}

}  // namespace braid
