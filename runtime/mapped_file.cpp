#include "runtime/mapped_file.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/error.h"
#include "runtime/data.h"

namespace braid {
namespace {

struct Mapping {
  void* address = MAP_FAILED;
  std::size_t size = 0;
  ~Mapping() {
    if (address != MAP_FAILED) munmap(address, size);
  }
};

}  // namespace

at::Tensor map_file(const std::filesystem::path& file, const std::string& data_name) {
  auto refuse = [&](const std::string& what) {
    return ConfigError(str_cat(data_location(file.string(), data_name), ": ", what));
  };
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw refuse(str_cat("cannot open: ", std::strerror(errno)));
  struct stat st {};
  auto mapping = std::make_shared<Mapping>();
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    mapping->size = static_cast<std::size_t>(st.st_size);
    mapping->address = mmap(nullptr, mapping->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  }
  const int saved = errno;
  close(fd);
  if (mapping->address == MAP_FAILED) {
    throw refuse(st.st_size == 0 ? "empty file" : str_cat("cannot map: ", std::strerror(saved)));
  }
  return at::from_blob(
      mapping->address, {static_cast<std::int64_t>(mapping->size)}, [mapping](void*) {},
      at::TensorOptions(at::kByte));
}

}  // namespace braid
