// The threads one rank computes with: Torch's intra-op pool and, when LibTorch runs its linear
// layers on OpenBLAS (Debian's build does), OpenBLAS's own pool, which ignores
// at::set_num_threads: without both a "1-thread" rank keeps every core busy and ranks
// oversubscribe the machine.
#pragma once

namespace braid {

void set_compute_threads(int threads);

}  // namespace braid
