// Errors braid raises. Two kinds (docs/errors.md):
//  - broken preconditions: BRAID_CHECK(cond, msg...) throws CheckError naming file, line and the
//    failed expression; the program has a bug or a caller passed nonsense.
//  - failures a caller may handle: ConfigError (bad input, exit code 2), CommError and its
//    TimeoutError (the job can no longer communicate; the communicator is broken afterwards),
//    CheckpointError (a checkpoint is corrupt or does not match the run), NonFiniteError (a
//    gradient was not finite under train.nonfinite: error; raised on every rank alike).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace braid {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CheckError : public Error {
 public:
  using Error::Error;
};

class ConfigError : public Error {
 public:
  using Error::Error;
};

class CommError : public Error {
 public:
  using Error::Error;
};

class TimeoutError : public CommError {
 public:
  using CommError::CommError;
};

class CheckpointError : public Error {
 public:
  using Error::Error;
};

// Every rank raises it, with the same message, once the ranks agreed that a gradient (or a
// local-update method's pseudo-gradient) was not finite: the caller may stop without aborting.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& out, const T& first, const Rest&... rest) {
  out << first;
  append(out, rest...);
}
}  // namespace detail

// "a, b, c": lists of valid names in messages.
inline std::string join(const std::vector<std::string>& items, const char* separator = ", ") {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

// Concatenates its arguments with operator<< into one string.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  detail::append(out, args...);
  return out.str();
}

[[noreturn]] void throw_check_failure(const char* file, int line, const char* expr,
                                      const std::string& message);

}  // namespace braid

#define BRAID_CHECK(cond, ...)                                                                \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      ::braid::throw_check_failure(__FILE__, __LINE__, #cond, ::braid::str_cat(__VA_ARGS__)); \
    }                                                                                         \
  } while (0)
