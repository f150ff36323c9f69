#include "runtime/metrics.h"

#include <fmt/core.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace braid {

namespace {

std::int64_t step_of(const std::string& line) {
  auto at = line.find("\"step\":");
  return at == std::string::npos ? -1 : std::atoll(line.c_str() + at + 7);
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path, std::int64_t keep_through_step) {
  if (keep_through_step >= 0) {
    std::ifstream in(path);
    std::ostringstream kept;
    for (std::string line; std::getline(in, line);) {
      if (step_of(line) <= keep_through_step) kept << line << '\n';
    }
    in.close();
    std::ofstream(path, std::ios::trunc) << kept.str();
  } else {
    std::ofstream(path, std::ios::trunc);
  }
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw Error(str_cat("cannot open metrics file ", path));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const std::vector<std::string>& fields) {
  std::string line = "{";
  for (const std::string& f : fields) {
    if (f.empty()) continue;  // an optional field that is absent
    if (line.size() > 1) line += ',';
    line += f;
  }
  line += "}\n";
  std::fputs(line.c_str(), file_);
  std::fflush(file_);
}

std::string field(const char* key, double value) {
  if (!std::isfinite(value)) return fmt::format("\"{}\":null", key);
  return fmt::format("\"{}\":{:.17g}", key, value);
}
std::string field(const char* key, std::int64_t value) {
  return fmt::format("\"{}\":{}", key, value);
}
std::string field(const char* key, std::uint64_t value) {
  return fmt::format("\"{}\":{}", key, value);
}

}  // namespace braid
