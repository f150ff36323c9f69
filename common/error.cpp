#include "common/error.h"

namespace braid {

void throw_check_failure(const char* file, int line, const char* expr, const std::string& message) {
  throw CheckError(str_cat(file, ":", line, ": check failed: ", expr, message.empty() ? "" : " (",
                           message, message.empty() ? "" : ")"));
}

}  // namespace braid
