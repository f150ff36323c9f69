#include "runtime/npy_arrays.h"

#include <ATen/ATen.h>

#include <cstring>
#include <regex>

#include "common/error.h"
#include "runtime/mapped_file.h"

namespace braid {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void refuse(const fs::path& file, const std::string& what) {
  throw ConfigError(str_cat(data_location(file.string(), "arrays"), ": ", what));
}

struct Header {
  at::ScalarType dtype = at::kFloat;
  std::vector<std::int64_t> shape;
  std::size_t data_offset = 0;
};

at::ScalarType dtype_of(const fs::path& file, const std::string& descr) {
  if (descr == "<f4") return at::kFloat;
  if (descr == "<f8") return at::kDouble;
  if (descr == "<i8") return at::kLong;
  if (descr == "|u1" || descr == "<u1") return at::kByte;
  refuse(file, str_cat("field 'descr' is '", descr,
                       "'; expected little-endian float32 ('<f4'), float64 ('<f8'), int64 "
                       "('<i8') or uint8 ('|u1')"));
}

// The header: magic, version, length, then a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 784), }
Header parse_header(const fs::path& file, const char* bytes, std::size_t size) {
  if (size < 10 || std::memcmp(bytes, "\x93NUMPY", 6) != 0) {
    refuse(file, "not a .npy file (no \\x93NUMPY magic); write it with numpy.save");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  if (major < 1 || major > 3) refuse(file, str_cat("unknown .npy format version ", major));
  const std::size_t prefix = major == 1 ? 10 : 12;
  if (size < prefix) refuse(file, "truncated header");
  std::uint32_t length = 0;
  if (major == 1) {
    length = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
  } else {
    for (int i = 3; i >= 0; --i) length = length << 8 | static_cast<unsigned char>(bytes[8 + i]);
  }
  if (size < prefix + length) refuse(file, "truncated header");
  const std::string dict(bytes + prefix, length);
  std::smatch m;
  Header header;
  header.data_offset = prefix + length;
  if (!std::regex_search(dict, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) {
    refuse(file, "header has no field 'descr'");
  }
  header.dtype = dtype_of(file, m[1]);
  if (!std::regex_search(dict, m, std::regex(R"('fortran_order'\s*:\s*(True|False))"))) {
    refuse(file, "header has no field 'fortran_order'");
  }
  if (m[1] == "True") {
    refuse(file,
           "field 'fortran_order' is True; save a C-ordered array "
           "(numpy.save(path, numpy.ascontiguousarray(a)))");
  }
  if (!std::regex_search(dict, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) {
    refuse(file, "header has no field 'shape'");
  }
  const std::string dims = m[1];
  static const std::regex number(R"(\d+)");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), number);
       it != std::sregex_iterator(); ++it) {
    header.shape.push_back(std::stoll(it->str()));
  }
  if (header.shape.empty()) refuse(file, "field 'shape' is (): a sample needs a row");
  return header;
}

}  // namespace

const std::vector<std::string>& array_files() {
  static const std::vector<std::string> files = {"x_train.npy", "y_train.npy", "x_test.npy",
                                                 "y_test.npy"};
  return files;
}

at::Tensor load_npy(const fs::path& file) {
  const at::Tensor raw = map_file(file, "arrays");
  const auto size = static_cast<std::size_t>(raw.numel());
  const Header header = parse_header(file, static_cast<const char*>(raw.data_ptr()), size);
  std::int64_t elements = 1;
  for (std::int64_t d : header.shape) elements *= d;
  const std::size_t expected =
      header.data_offset + static_cast<std::size_t>(elements) * c10::elementSize(header.dtype);
  if (size != expected) {
    refuse(file, str_cat("field 'shape' ", c10::IntArrayRef(header.shape), " and 'descr' need ",
                         expected, " bytes, the file has ", size));
  }
  if (header.data_offset % c10::elementSize(header.dtype) != 0) {
    refuse(file, str_cat("the header's length leaves the data at byte ", header.data_offset,
                         ", not aligned to its dtype; write it with numpy.save"));
  }
  // A view of the mapping's bytes as the array: it keeps the mapping alive.
  return raw
      .narrow(0, static_cast<std::int64_t>(header.data_offset),
              static_cast<std::int64_t>(size - header.data_offset))
      .view(header.dtype)
      .view(header.shape);
}

DataSplits load_arrays(const DataConfig& data) {
  const fs::path dir = data.path;
  auto split = [&](const std::string& x_name, const std::string& y_name, std::int64_t limit) {
    Dataset set{load_npy(dir / x_name), load_npy(dir / y_name)};
    if (set.inputs.size(0) != set.targets.size(0)) {
      refuse(dir / y_name, str_cat("field 'shape' has ", set.targets.size(0), " rows, but ", x_name,
                                   " has ", set.inputs.size(0)));
    }
    if (limit > 0 && limit < set.size()) {
      set.inputs = set.inputs.narrow(0, 0, limit);
      set.targets = set.targets.narrow(0, 0, limit);
    }
    return set;
  };
  DataSplits splits;
  splits.train = split("x_train.npy", "y_train.npy", data.train_limit);
  splits.test = split("x_test.npy", "y_test.npy", data.test_limit);
  return splits;
}

}  // namespace braid
