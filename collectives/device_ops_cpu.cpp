// device_ops.h without the CUDA path: CPU copies work, every CUDA request is a CommError that
// says how to get a CUDA build.
#include <cstring>

#include "collectives/device_ops.h"
#include "common/error.h"

namespace braid {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  throw CommError(str_cat(what, " needs CUDA, but braid was built without it (configure with ",
                          "-DBRAID_CUDA=ON where the CUDA toolkit and NCCL are installed)"));
}
}  // namespace

bool cuda_built() { return false; }
int cuda_device_count() { return 0; }

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes) {
  if (dst_device.is_cuda() || src_device.is_cuda()) no_cuda("copying to or from a CUDA buffer");
  if (bytes && dst != src) std::memcpy(dst, src, bytes);
}

void* device_alloc(std::size_t, Device device) { no_cuda("allocating CUDA memory"); }
void device_free(void*, Device) noexcept {}
void device_reduce_into(Buffer, const void*, ReduceOp) { no_cuda("reducing a CUDA buffer"); }
void device_finish_avg(Buffer, int) { no_cuda("averaging a CUDA buffer"); }

}  // namespace braid
