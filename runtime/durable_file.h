// Durable files: what a checkpoint, its `latest` pointer and the exported model are written
// with, so that after a crash or power loss readers see the old file or the whole new one.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace braid {

// fsync of a file or directory (for a directory: the entries created or renamed in it).
// Throws braid::Error naming the call and the path.
void sync_path(const std::filesystem::path& path);

// Writes `bytes` to path.tmp, fsyncs it, renames it over `path` and fsyncs the directory.
void write_durably(const std::filesystem::path& path, const char* bytes, std::size_t size);
inline void write_durably(const std::filesystem::path& path, const std::string& bytes) {
  write_durably(path, bytes.data(), bytes.size());
}

}  // namespace braid
