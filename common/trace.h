// Trace: a Chrome trace of what one rank does (runtime.trace: true), written as the JSON object
// format, {"traceEvents": [...]}, with complete events ("ph": "X", microseconds since the
// trace started). Perfetto and chrome://tracing open it. Any layer records through this one
// process-wide recorder, so the communication thread's buckets and the training thread's
// forward and backward land on one timeline (one row per thread).
//
// Off by default; recording while off is one relaxed atomic load, so the calls stay in the code
// at no measurable cost. Events are appended to the file as they come (under a mutex, flushed
// every few hundred events) and the file is closed properly by stop().
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace braid::trace {

using Clock = std::chrono::steady_clock;

// Starts recording into `path` (created or truncated); `pid` labels the process (the rank).
// Throws braid::Error when the file cannot be written.
void start(const std::string& path, int pid);
// Writes the closing bracket and closes the file; a no-op when not recording.
void stop();
bool enabled();

// One complete event from `begin` to now on the calling thread. `category` groups events
// ("compute", "comm", "io").
void complete(const char* name, const char* category, Clock::time_point begin);
void complete(const std::string& name, const char* category, Clock::time_point begin);

// Records the enclosing block as one event.
class Scope {
 public:
  Scope(const char* name, const char* category)
      : name_(name), category_(category), begin_(enabled() ? Clock::now() : Clock::time_point{}) {}
  ~Scope() {
    if (begin_ != Clock::time_point{}) complete(name_, category_, begin_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* name_;
  const char* category_;
  Clock::time_point begin_;
};

}  // namespace braid::trace
