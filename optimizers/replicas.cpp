#include "optimizers/replicas.h"

#include <ATen/ATen.h>

#include <cstring>
#include <map>
#include <sstream>

#include "collectives/tensor.h"
#include "common/error.h"

namespace braid {

namespace {

std::uint64_t fnv1a(const void* data, std::size_t bytes,
                    std::uint64_t hash = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  return hash;
}

std::string signature(const std::string& name, const at::Tensor& t) {
  std::ostringstream out;
  out << "'" << name << "' " << t.sizes() << " " << c10::toString(t.scalar_type());
  return out.str();
}

// Every rank's values of one int64 per rank.
std::vector<std::int64_t> allgather_values(Communicator& comm,
                                           const std::vector<std::int64_t>& mine) {
  std::vector<std::int64_t> all(mine.size() * comm.size());
  const auto n = static_cast<std::int64_t>(mine.size());
  comm.allgather(Buffer{const_cast<std::int64_t*>(mine.data()), n, DType::kInt64},
                 Buffer{all.data(), n * comm.size(), DType::kInt64})
      .wait();
  return all;
}

// FNV-1a over the values' bytes: replicas are identical only if they are bitwise equal.
std::uint64_t value_checksum(const std::vector<at::Tensor>& parameters) {
  std::uint64_t hash = 1469598103934665603ull;
  for (const at::Tensor& p : parameters) {
    // On the host: a CUDA parameter's memory is not addressable from here.
    at::Tensor c = p.detach().to(at::kCPU).contiguous();
    hash = fnv1a(host_data(c, "replica checksum"), c.numel() * c.element_size(), hash);
  }
  return hash;
}

}  // namespace

void check_same_model(Communicator& comm, const NamedTensors& parameters) {
  const auto count = static_cast<std::int64_t>(parameters.size());
  auto counts = allgather_values(comm, {count});
  for (int r = 1; r < comm.size(); ++r) {
    if (counts[r] != counts[0]) {
      throw ConfigError(str_cat("the model differs across ranks: rank 0 has ", counts[0],
                                " parameter tensors, rank ", r, " has ", counts[r]));
    }
  }
  std::vector<std::int64_t> hashes;
  for (const auto& [name, tensor] : parameters) {
    std::string s = signature(name, tensor);
    hashes.push_back(static_cast<std::int64_t>(fnv1a(s.data(), s.size())));
  }
  auto all = allgather_values(comm, hashes);
  for (std::int64_t i = 0; i < count; ++i) {
    for (int r = 1; r < comm.size(); ++r) {
      if (all[r * count + i] != all[i]) {
        throw ConfigError(str_cat("the model differs across ranks: parameter ", i, " (",
                                  signature(parameters[i].first, parameters[i].second), " on rank ",
                                  comm.rank(), ") has another name, shape or dtype on rank ",
                                  r == comm.rank() ? 0 : r));
      }
    }
  }
}

void broadcast_parameters(Communicator& comm, const std::vector<at::Tensor>& parameters, int root) {
  std::map<c10::ScalarType, std::vector<at::Tensor>> by_dtype;
  for (const at::Tensor& p : parameters) by_dtype[p.scalar_type()].push_back(p.data());
  for (auto& [dtype, tensors] : by_dtype) {
    std::vector<at::Tensor> flat_views;
    for (const at::Tensor& t : tensors) flat_views.push_back(t.reshape({-1}));
    at::Tensor flat = at::cat(flat_views);
    // A copy is a copy of bytes: sent as uint8, buffers of any dtype travel (a bool attention
    // mask, int16 indices), not only the dtypes the reducing collectives compute in.
    comm.broadcast(as_buffer(flat.view(at::kByte)), root).wait();
    std::int64_t offset = 0;
    for (at::Tensor& t : tensors) {
      t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

void make_replicas_identical(Communicator& comm, const std::vector<at::Tensor>& parameters,
                             int root) {
  auto all = allgather_values(comm, {static_cast<std::int64_t>(value_checksum(parameters))});
  bool same = true;
  for (int r = 0; r < comm.size(); ++r) same = same && all[r] == all[root];
  if (same) return;
  broadcast_parameters(comm, parameters, root);
  check_replicas_identical(comm, parameters);
}

FlatParameters flat_parameters(const NamedTensors& parameters, const char* who) {
  FlatParameters flat;
  for (const auto& [name, tensor] : parameters) {
    if (flat.tensors.empty()) flat.dtype = tensor.scalar_type();
    BRAID_CHECK(tensor.scalar_type() == flat.dtype &&
                    (flat.dtype == at::kFloat || flat.dtype == at::kDouble),
                who, " needs float32 or float64 parameters of one dtype; '", name, "' is ",
                tensor.scalar_type());
    flat.tensors.push_back(tensor);
    flat.names.push_back(name);
    flat.count += tensor.numel();
  }
  return flat;
}

std::uint64_t check_replicas_identical(Communicator& comm,
                                       const std::vector<at::Tensor>& parameters) {
  const std::uint64_t hash = value_checksum(parameters);
  auto all = allgather_values(comm, {static_cast<std::int64_t>(hash)});
  for (int r = 1; r < comm.size(); ++r) {
    if (all[r] != all[0]) {
      throw CommError(str_cat("replicas diverged: parameters on rank ", r,
                              " differ from rank 0's (checksums ", all[r], " and ", all[0], ")"));
    }
  }
  return hash;
}

}  // namespace braid
