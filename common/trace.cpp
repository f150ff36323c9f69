#include "common/trace.h"

#include <atomic>
#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>

#include "common/error.h"

namespace braid::trace {

namespace {

struct Recorder {
  std::atomic<bool> on{false};
  std::mutex mutex;
  std::FILE* file = nullptr;
  int pid = 0;
  Clock::time_point origin;
  std::uint64_t events = 0;
};

Recorder& recorder() {
  static Recorder r;
  return r;
}

// JSON string contents: names come from our own code and op descriptions, but escape anyway.
std::string escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}

}  // namespace

void start(const std::string& path, int pid) {
  Recorder& r = recorder();
  std::lock_guard<std::mutex> lock(r.mutex);
  BRAID_CHECK(!r.file, "trace already started");
  r.file = std::fopen(path.c_str(), "w");
  if (!r.file) throw Error(str_cat("cannot write trace file '", path, "'"));
  std::fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", r.file);
  r.pid = pid;
  r.origin = Clock::now();
  r.events = 0;
  r.on.store(true, std::memory_order_release);
}

void stop() {
  Recorder& r = recorder();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!r.file) return;
  r.on.store(false, std::memory_order_release);
  std::fputs("\n]}\n", r.file);
  std::fclose(r.file);
  r.file = nullptr;
}

bool enabled() { return recorder().on.load(std::memory_order_relaxed); }

void complete(const std::string& name, const char* category, Clock::time_point begin) {
  if (!enabled()) return;
  const Clock::time_point end = Clock::now();
  Recorder& r = recorder();
  const auto tid =
      static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id()) & 0x7fffffff);
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!r.file) return;
  const double ts = std::chrono::duration<double, std::micro>(begin - r.origin).count();
  const double dur = std::chrono::duration<double, std::micro>(end - begin).count();
  std::fprintf(r.file,
               "%s{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,"
               "\"pid\":%d,\"tid\":%u}",
               r.events ? ",\n" : "", escaped(name).c_str(), category, ts, dur, r.pid, tid);
  if (++r.events % 256 == 0) std::fflush(r.file);
}

void complete(const char* name, const char* category, Clock::time_point begin) {
  if (enabled()) complete(std::string(name), category, begin);
}

}  // namespace braid::trace
