// Command-line flags of the example programs: "--name value" or "--name=value", every flag
// declared with its default. A flag whose default is "false" is a switch: it takes no value and
// reads "true" when given. An unknown flag, a missing value or a malformed number throws
// std::invalid_argument naming it and listing the flags, before anything is trained.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

namespace examples {

class Flags {
 public:
  Flags(int argc, const char* const* argv, std::map<std::string, std::string> defaults)
      : values_(std::move(defaults)) {
    for (int i = 1; i < argc; ++i) i = parse(argc, argv, i);
  }

  std::int64_t integer(const std::string& name) const {
    const std::string& text = get(name);
    char* end = nullptr;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') fail(name + " expects an integer, got '" + text + "'");
    return value;
  }
  double real(const std::string& name) const {
    const std::string& text = get(name);
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0') fail(name + " expects a number, got '" + text + "'");
    return value;
  }
  const std::string& text(const std::string& name) const { return get(name); }
  bool on(const std::string& name) const { return get(name) == "true"; }

 private:
  // Reads the flag at argv[i] (and its value); returns the index of the last argument used.
  int parse(int argc, const char* const* argv, int i) {
    std::string name = argv[i], value;
    const auto equals = name.find('=');
    const bool inline_value = equals != std::string::npos;
    if (inline_value) {
      value = name.substr(equals + 1);
      name.resize(equals);
    }
    const auto known = values_.find(name);
    if (known == values_.end()) fail("unknown flag '" + name + "'");
    if (known->second == "false" && !inline_value) {
      known->second = "true";
      return i;
    }
    if (!inline_value) {
      if (i + 1 >= argc) fail(name + " needs a value");
      value = argv[++i];
    }
    known->second = value;
    return i;
  }

  const std::string& get(const std::string& name) const {
    const auto known = values_.find(name);
    if (known == values_.end()) fail("the program reads undeclared flag " + name);
    return known->second;
  }

  [[noreturn]] void fail(const std::string& what) const {
    std::string usage = what + "; flags (with defaults):";
    for (const auto& [name, value] : values_) usage += " " + name + " " + value;
    throw std::invalid_argument(usage);
  }

  std::map<std::string, std::string> values_;
};

}  // namespace examples
