#include "collectives/partial_gather.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "collectives/blocks.h"
#include "common/error.h"

namespace braid {

void LateReceives::add(Entry entry) {
  const int peer = entry.request->peer();
  entries_.push_back(std::move(entry));
  const auto posted = std::count_if(entries_.begin(), entries_.end(), [&](const Entry& e) {
    return e.request && e.request->peer() == peer;
  });
  if (static_cast<std::size_t>(posted) > max_per_peer_) {
    throw CommError(str_cat("rank ", peer, " has not sent its block for the last ", posted,
                            " partial gathers: it hangs, or fell further behind than ",
                            max_per_peer_, " operations, which nothing waits for"));
  }
}

void LateReceives::reap(int tag) {
  // Requests go first, one by one (a posted one is cancelled and completed by its destructor);
  // only then are entries erased, since erasing move-assigns and would free memory early.
  for (Entry& entry : entries_) {
    bool finished = entry.request->tag() == tag;
    if (!finished) {
      try {
        finished = entry.request->test();
      } catch (const std::exception&) {
        finished = true;  // a failed late block was going to be discarded anyway
      }
    }
    if (finished) entry.request.reset();
  }
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [](const Entry& entry) { return !entry.request; }),
                 entries_.end());
}

namespace {

// Polls `pending` until `needed` have completed (recording their index in `arrived`), the
// deadline passes or the communicator is aborted. Spins, then yields, then sleeps, as
// Request::wait_until does.
bool wait_for_some(std::vector<RequestPtr>& pending, std::vector<int>& arrived, int needed,
                   Clock::time_point deadline, const std::atomic<bool>* aborted) {
  for (int spins = 0; static_cast<int>(arrived.size()) < needed; ++spins) {
    for (std::size_t i = 0; i < pending.size(); ++i) {
      if (pending[i] && pending[i]->test()) {
        pending[i].reset();
        arrived.push_back(static_cast<int>(i));
        if (static_cast<int>(arrived.size()) == needed) return true;
      }
    }
    if (spins >= 64 && (spins & 63) == 0 &&
        (Clock::now() >= deadline || (aborted && aborted->load()))) {
      return false;
    }
    if (spins >= 4096) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    } else if (spins >= 64) {
      std::this_thread::yield();
    }
  }
  return true;
}

}  // namespace

std::vector<int> gather_first_k(OpContext& ctx, Buffer input, Buffer output, int k, int root,
                                LateReceives& late) {
  const int P = ctx.size(), r = ctx.rank();
  BRAID_CHECK(root >= 0 && root < P, "gather_first_k root ", root, " of ", P);
  BRAID_CHECK(k >= 1 && k <= P, "gather_first_k needs 1 <= k <= ", P, ", got k = ", k);
  if (r != root) {
    auto request = ctx.send(input, root);
    ctx.wait(*request);
    return {};
  }
  BRAID_CHECK(output.count == k * input.count && output.dtype == input.dtype,
              "gather_first_k output has ", output.count, " elements, needs k * ", input.count);
  std::vector<std::unique_ptr<std::vector<char>>> staging(P);
  std::vector<RequestPtr> pending(P);
  for (int peer = 0; peer < P; ++peer) {
    if (peer == root) continue;
    staging[peer] = std::make_unique<std::vector<char>>(input.bytes());
    pending[peer] = ctx.recv(staging[peer]->data(), input.bytes(), peer);
  }
  std::vector<int> arrived;
  const bool complete = wait_for_some(pending, arrived, k - 1, ctx.deadline(), ctx.aborted());
  for (int peer = 0; peer < P; ++peer) {
    if (pending[peer]) late.add({std::move(staging[peer]), std::move(pending[peer])});
  }
  if (!complete && ctx.aborted() && ctx.aborted()->load()) {
    ctx.fail_wait(str_cat(k - 1, " blocks from other ranks (", arrived.size(), " arrived)"));
  }
  if (!complete) {
    throw TimeoutError(str_cat("rank ", r, ": ", ctx.op(), " timed out with ", arrived.size(),
                               " of the ", k - 1, " blocks it needs from other ranks"));
  }
  arrived.push_back(root);
  std::sort(arrived.begin(), arrived.end());
  for (std::size_t j = 0; j < arrived.size(); ++j) {
    Buffer block = output.slice(static_cast<std::int64_t>(j) * input.count, input.count);
    const int from = arrived[j];
    copy_block(block,
               from == root ? input : Buffer{staging[from]->data(), input.count, input.dtype});
  }
  return arrived;
}

}  // namespace braid
