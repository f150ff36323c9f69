// data.name: arrays: NumPy .npy files, the format numpy.save writes, memory-mapped so a data set
// larger than RAM trains without being read whole.
//
// data.path is a directory holding x_train.npy, y_train.npy, x_test.npy and y_test.npy. Each is
// a version 1, 2 or 3 .npy file of float32, float64, int64 or uint8 in little-endian C order
// with at least one dimension; x and y of a split have the same number of rows, and a row is a
// sample (sharded over ranks like Fashion-MNIST's images, data.train_limit and data.test_limit
// keep the first rows). The mapping is private (copy on write): nothing braid does to a tensor
// reaches the file. A header that does not parse, Fortran order, another dtype, a file shorter
// or longer than its shape says, or row counts that differ are ConfigErrors naming the file
// and the field.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/data.h"

namespace braid {

// The files data.path must hold, in the order above.
const std::vector<std::string>& array_files();

// One .npy file as a tensor over its memory mapping (the mapping lives as long as the tensor).
at::Tensor load_npy(const std::filesystem::path& file);

// The four files as the train and test splits (num_classes 0: the arrays say nothing of it).
DataSplits load_arrays(const DataConfig& data);

}  // namespace braid
