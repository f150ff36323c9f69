#include "runtime/straggler_trace.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "common/error.h"

namespace braid {
namespace {

constexpr double kMaxDelayMs = 3600000;  // an hour: a longer sleep is a unit mistake

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

std::vector<std::string> fields_of(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream in(line);
  std::string field;
  while (std::getline(in, field, ',')) fields.push_back(trim(field));
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

template <typename T>
bool parse(const std::string& text, T& value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end && !text.empty();
}

// strtod, not from_chars: libstdc++ 12 has floating-point from_chars, older ones do not.
bool parse_number(const std::string& text, double& value) {
  if (text.empty()) return false;
  std::size_t used = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == text.size() && std::isfinite(value);
}

}  // namespace

StragglerTrace StragglerTrace::load(const std::string& path, int rank, int world) {
  std::ifstream in(path);
  if (!in) throw ConfigError(str_cat("inject.trace: cannot read '", path, "'"));
  StragglerTrace trace;
  std::set<std::pair<std::int64_t, std::int64_t>> seen;
  std::string line;
  std::int64_t number = 0;
  auto bad = [&](const std::string& why) {
    return ConfigError(
        str_cat("inject.trace ", path, " line ", number, ": ", why, " ('", trim(line), "')"));
  };
  bool header = false;
  while (std::getline(in, line)) {
    ++number;
    if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // a UTF-8 BOM
    if (trim(line).empty()) continue;
    const std::vector<std::string> f = fields_of(line);
    if (!header) {
      if (f != std::vector<std::string>{"step", "rank", "delay_ms"})
        throw bad("the header must be step,rank,delay_ms");
      header = true;
      continue;
    }
    std::int64_t step = 0, r = 0;
    double delay = 0;
    if (f.size() != 3) throw bad(str_cat("expected 3 fields, got ", f.size()));
    if (!parse(f[0], step) || step < 0) throw bad("step is not an integer >= 0");
    if (!parse(f[1], r) || r < 0 || r >= world) {
      throw bad(str_cat("rank is not one of the job's ranks 0..", world - 1));
    }
    if (!parse_number(f[2], delay) || delay < 0 || delay > kMaxDelayMs) {
      throw bad("delay_ms is not a number in [0, 3600000]");
    }
    if (!seen.emplace(step, r).second) throw bad("step and rank listed twice");
    ++trace.lines_;
    if (r == rank) trace.delays_[step] = delay;
  }
  if (!header) throw ConfigError(str_cat("inject.trace ", path, ": empty (no header)"));
  return trace;
}

double StragglerTrace::delay_ms(std::int64_t step) const {
  const auto it = delays_.find(step);
  return it == delays_.end() ? 0.0 : it->second;
}

}  // namespace braid
