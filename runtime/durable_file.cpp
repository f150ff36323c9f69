#include "runtime/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace braid {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void throw_errno(const char* what, const fs::path& path) {
  throw Error(str_cat("cannot ", what, " ", path.string(), ": ", std::strerror(errno)));
}

// Closes the descriptor on every path out, keeping errno of the call that failed.
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    const int saved = errno;
    if (fd >= 0) ::close(fd);
    errno = saved;
  }
};

}  // namespace

void sync_path(const fs::path& path) {
  FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) throw_errno("open", path);
  if (::fsync(file.fd) != 0) throw_errno("fsync", path);
}

void write_durably(const fs::path& path, const char* bytes, std::size_t size) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    FileDescriptor file{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    if (file.fd < 0) throw_errno("create", tmp);
    for (std::size_t done = 0; done < size;) {
      const ssize_t n = ::write(file.fd, bytes + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("write", tmp);
      done += static_cast<std::size_t>(n);
    }
    if (::fsync(file.fd) != 0) throw_errno("fsync", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw_errno("rename into place", tmp);
  sync_path(path.has_parent_path() ? path.parent_path() : fs::path("."));
}

}  // namespace braid
