#include "runtime/run_lock.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace braid {

namespace fs = std::filesystem;

namespace {

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown host";
  return name;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

// What the holder wrote: "host H, pid P, since T"; empty while it is still writing it.
std::string owner_of(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

[[noreturn]] void refuse(const std::string& dir, const fs::path& file) {
  const std::string owner = owner_of(file);
  throw ConfigError(
      str_cat("run.dir '", dir, "' is in use by another braid job (",
              owner.empty() ? "its owner is still writing " + file.string() : owner,
              "); wait for it to end or choose another run.dir (nothing was written)"));
}

struct flock whole_file(short type) {
  struct flock whole {};
  whole.l_type = type;
  whole.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
  return whole;
}

bool locks_unsupported(int error) {
  return error == ENOLCK || error == EOPNOTSUPP || error == ENOSYS || error == EINVAL;
}

}  // namespace

std::unique_ptr<RunDirLock> RunDirLock::acquire(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw ConfigError(str_cat("run.dir '", dir, "': cannot create it: ", ec.message()));
  const fs::path file = fs::path(dir) / ".lock";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw ConfigError(
        str_cat("run.dir '", dir, "': cannot open ", file.string(), ": ", std::strerror(errno)));
  }
  struct flock whole = whole_file(F_WRLCK);
  if (::fcntl(fd, F_SETLK, &whole) != 0) {
    const int error = errno;
    if (locks_unsupported(error)) {
      ::close(fd);
      spdlog::warn(
          "run.dir '{}': the file system does not support record locks ({}); a second "
          "job in this run directory would not be stopped",
          dir, std::strerror(error));
      return nullptr;
    }
    ::close(fd);
    refuse(dir, file);
  }
  std::ostringstream owner;
  owner << "host " << host_name() << ", pid " << ::getpid() << ", since " << utc_now() << "\n";
  const std::string text = owner.str();
  // The owner line is for messages only: a failure to write it does not weaken the lock.
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) < 0) {
    spdlog::warn("run.dir '{}': could not write the owner into {}", dir, file.string());
  }
  return std::unique_ptr<RunDirLock>(new RunDirLock(fd));
}

void RunDirLock::check_free(const std::string& dir) {
  const fs::path file = fs::path(dir) / ".lock";
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // never locked
  struct flock probe = whole_file(F_WRLCK);
  const bool held = ::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
  ::close(fd);
  if (held) refuse(dir, file);
}

RunDirLock::~RunDirLock() { ::close(fd_); }

}  // namespace braid
