// FlightWatch: one thread per rank over its flight recorder (collectives/flight_recorder.h).
// It logs each stall once: "rank 3: stall: allreduce(ring, ...) (sequence number 57 on channel
// 0) has waited 2.1 s for rank 2", long before runtime.timeout_s ends the job. And it writes
// the rank's flight file: at each stall, on SIGINT/SIGTERM (runtime/interrupt.h), on SIGUSR1
// from outside (the job keeps running; mpirun passes SIGUSR1 on to every rank), and when the
// owner calls dump() (a failure).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "runtime/flight_file.h"

namespace braid {

class FlightWatch {
 public:
  // `identity` is what every file says about this rank (its channels are filled in at each
  // write). No file is written when the recorder keeps no records (runtime.flight_recorder: 0).
  FlightWatch(std::shared_ptr<FlightRecorder> recorder, FlightFile identity,
              std::filesystem::path path);
  ~FlightWatch();  // stops the thread and restores the previous SIGUSR1 handler
  FlightWatch(const FlightWatch&) = delete;
  FlightWatch& operator=(const FlightWatch&) = delete;

  // Operations running longer than this are reported (0: none, e.g. while a checkpoint is
  // written and ranks legitimately wait for the slowest writer).
  void set_stall_threshold(std::chrono::milliseconds threshold);
  // Writes the flight file now with `reason`; never throws (a failure to write is logged).
  void dump(const std::string& reason);

 private:
  void loop();

  std::shared_ptr<FlightRecorder> recorder_;
  FlightFile identity_;
  std::filesystem::path path_;
  std::atomic<std::int64_t> threshold_ms_{0};
  std::mutex mutex_;  // guards stop_ and serialises writes of the file
  std::condition_variable wake_;
  bool stop_ = false;
  int dumped_signal_ = 0;  // watch thread only
  struct sigaction previous_usr1_ {};
  std::thread thread_;
};

}  // namespace braid
