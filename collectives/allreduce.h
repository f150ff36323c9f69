// Allreduce: every rank ends with the element-wise reduction of all ranks' buffers, in place.
// Each algorithm is an object built once and reused (it keeps its scratch memory between
// calls); run() sees a kSum for kAvg (the communicator divides once at the end). Every
// algorithm gives all ranks bitwise identical results, for every count (0, 1, fewer than P,
// not divisible by P) and every rank count.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "collectives/buffer.h"
#include "collectives/cost_model.h"
#include "collectives/device_ops.h"
#include "collectives/op_context.h"

namespace braid {

struct AllreduceOptions {
  // Ring and star move data in segments of this size so that receiving, reducing and sending
  // overlap and the working set stays in cache.
  std::size_t segment_bytes = 256 * 1024;
  CostModel cost_model;  // used by "auto"
};

class Allreduce {
 public:
  virtual ~Allreduce() = default;
  virtual const char* name() const = 0;
  virtual void run(OpContext& ctx, Buffer buffer, ReduceOp op) = 0;
};

// Names accepted by make_allreduce, in the order benchmarks list them.
// ring, star, rhd, native, shm, hierarchical, auto
const std::vector<std::string>& allreduce_names();

// Throws ConfigError naming the valid algorithms for an unknown name.
std::unique_ptr<Allreduce> make_allreduce(const std::string& name,
                                          const AllreduceOptions& options = {});

// Reusable scratch memory on the device of the buffer it serves; grows, never shrinks.
class Scratch {
 public:
  char* get(std::size_t bytes, Device device = {}) {
    if (device.is_cpu()) {
      if (bytes > memory_.size()) memory_.resize(bytes);
      return memory_.data();
    }
    if (bytes > device_memory_.bytes() || device != device_memory_.device()) {
      device_memory_ = DeviceMemory();  // free first: device memory is scarce
      device_memory_ = DeviceMemory(bytes, device);
    }
    return static_cast<char*>(device_memory_.data());
  }

 private:
  std::vector<char> memory_;
  DeviceMemory device_memory_;
};

}  // namespace braid
