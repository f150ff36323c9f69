#include "runtime/compute_threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace braid {

void set_compute_threads(int threads) {
  at::set_num_threads(threads);
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(threads);
  }
}

}  // namespace braid
