// How long the calling thread has been runnable but not running: waiting for a CPU that other
// threads hold. Where a host runs more ranks than it has cores, the ranks take the cores from
// each other, and a rank's compute time counts those waits too; the straggler detector leaves
// them out there, so that a rank is named for its own slowness, not the scheduler's turns.
#pragma once

#include <cstdint>
#include <optional>

namespace braid {

// Nanoseconds the calling thread has waited on a run queue since it started, from the kernel's
// /proc/thread-self/schedstat (its second field); nullopt where the kernel does not publish it
// (no CONFIG_SCHED_INFO, /proc not mounted).
std::optional<std::int64_t> run_queue_wait_ns();

// Seconds the calling thread has waited on a run queue since `before` (a run_queue_wait_ns() of
// the same thread); 0 when either reading is missing.
double run_queue_seconds_since(const std::optional<std::int64_t>& before);

}  // namespace braid
