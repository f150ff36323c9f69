#include "runtime/flight_watch.h"

#include <csignal>

#include "common/error.h"
#include "common/log.h"
#include "runtime/interrupt.h"

namespace braid {

namespace {

std::atomic<bool> usr1_received{false};

void on_usr1(int) { usr1_received.store(true); }  // lock-free: async-signal-safe

// How often stalls and SIGUSR1 are looked for: a small fraction of the 2 s shortest threshold.
constexpr auto kPollPeriod = std::chrono::milliseconds(100);

}  // namespace

FlightWatch::FlightWatch(std::shared_ptr<FlightRecorder> recorder, FlightFile identity,
                         std::filesystem::path path)
    : recorder_(std::move(recorder)), identity_(std::move(identity)), path_(std::move(path)) {
  usr1_received.store(false);
  struct sigaction action {};
  action.sa_handler = on_usr1;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &action, &previous_usr1_);
  thread_ = std::thread([this] { loop(); });
}

FlightWatch::~FlightWatch() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  sigaction(SIGUSR1, &previous_usr1_, nullptr);
}

void FlightWatch::set_stall_threshold(std::chrono::milliseconds threshold) {
  threshold_ms_.store(threshold.count(), std::memory_order_relaxed);
}

void FlightWatch::dump(const std::string& reason) {
  if (recorder_->capacity() == 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  FlightFile file = identity_;
  file.reason = reason;
  file.written_us = flight_clock_us();
  file.channels = recorder_->snapshot();
  try {
    write_flight_file(path_, file);
  } catch (const std::exception& e) {
    spdlog::error("could not write the flight record {}: {}", path_.string(), e.what());
  }
}

void FlightWatch::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, kPollPeriod, [this] { return stop_; })) {
    lock.unlock();
    const std::chrono::milliseconds threshold(threshold_ms_.load(std::memory_order_relaxed));
    // Written at the stall, long before the timeout: when the first rank to time out ends
    // the job (MPI_Abort), the others may have no time left to write theirs.
    for (const Stall& stall : recorder_->stalls(threshold)) {
      spdlog::warn("stall: {}", stall.text());
      dump("stall: " + stall.text());
    }
    if (usr1_received.exchange(false)) {
      dump("SIGUSR1");
      spdlog::info("SIGUSR1: flight record written to {}", path_.string());
    }
    // SIGTERM (mpirun ending the job, Slurm preempting it) may be followed by SIGKILL before
    // the training thread, blocked in a collective, gets to it.
    if (const int signal = InterruptWatch::received(); signal != 0 && signal != dumped_signal_) {
      dumped_signal_ = signal;
      dump(str_cat("interrupted by signal ", signal));
    }
    lock.lock();
  }
}

}  // namespace braid
