// One job per run directory. Two jobs writing one run.dir would interleave metrics.jsonl and
// overwrite each other's checkpoints, config.yaml and summary.json, so rank 0 holds a lock on
// <run.dir>/.lock for the whole run, taken before anything else is written there.
//
// The lock is a POSIX record lock (fcntl F_SETLK), which the kernel releases on any exit of the
// holder (SIGKILL and MPI_Abort included), so a crashed job never leaves a stale lock on a local
// file system; on NFS the server releases a crashed client's locks when its lease ends (about
// 90 s). The file itself stays (deleting it would let two jobs lock two different files) and
// names the last owner: host, pid and since when, for the message a second job gets.
#pragma once

#include <memory>
#include <string>

namespace braid {

class RunDirLock {
 public:
  // Creates `dir` when missing and locks it. ConfigError naming the directory and the owner
  // (host, pid, since) when another process holds it. A file system without record locks gets
  // a warning and no lock (the run goes on unguarded).
  static std::unique_ptr<RunDirLock> acquire(const std::string& dir);
  // Without taking it: throws the same ConfigError when another process holds the lock of
  // `dir` (a check that runs before others that would blame the directory's contents).
  static void check_free(const std::string& dir);
  ~RunDirLock();  // releases
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  explicit RunDirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace braid
