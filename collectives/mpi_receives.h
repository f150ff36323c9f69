// MpiReceives: the MPI transport's receives, matched by probe before any data moves.
//
// A receive posted with MPI_Irecv that is smaller than the message MPI matches to it is
// "truncated", and Open MPI then writes past the receive buffer (heap corruption over its
// shared-memory and TCP paths alike; tests/mpi_faults_test.cpp reproduces it with ranks that pass
// different counts). So no receive is handed to MPI before its message is known: each waits in a
// queue per (source, tag), in the order posted; MPI_Improbe takes the oldest message of that pair
// for the oldest waiting receive (MPI's own matching order) and its size is compared with the
// receive's before MPI_Imrecv moves the data. A message of another size is received into memory of
// its own size, so the sender completes, and discarded; the receive fails with a CommError naming
// both sizes. Every test() of the transport's requests, sends included, advances every queue, so
// messages are matched whenever the communication thread polls, as posted receives would be (a
// large send completes only once its receiver matched it: a rank waiting on its own send must
// keep matching, or two ranks waiting on sends to each other would deadlock).
//
// A receive destroyed before its message came leaves its queue: MPI never saw it, so nothing
// writes into its buffer afterwards. One whose message was matched waits for the data (its sender
// is sending it); past a grace period the job is ended (MPI_Abort) rather than hang or let MPI
// write into memory its owner is about to free.
//
// Cost: one MPI_Improbe per waiting (source, tag) pair per poll, and for an eager message one copy
// out of MPI's unexpected-message buffer that a receive posted ahead would have saved.
//
// One thread at a time: the owning transport's communication thread.
#pragma once

#include <mpi.h>

#include <deque>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "collectives/transport.h"

namespace braid {

// Polls `request` for up to `grace`; true once it completed without error. Never throws.
bool settle(MPI_Request& request, Clock::duration grace);

class MpiReceives {
 public:
  // `owner` counts completed receives (Transport::count).
  MpiReceives(MPI_Comm comm, Transport* owner) : comm_(comm), owner_(owner) {}
  ~MpiReceives();
  MpiReceives(const MpiReceives&) = delete;
  MpiReceives& operator=(const MpiReceives&) = delete;

  // `bytes` from `peer` with `tag` into `data`, as messages of at most `max_message` bytes (the
  // sender splits the same way).
  RequestPtr post(void* data, std::size_t bytes, int peer, int tag, std::size_t max_message);
  // Matches every waiting receive whose message has arrived.
  void match();

 private:
  class Receive;
  struct Waiting {
    Receive* receive;
    std::size_t part;
  };
  struct Discarded {  // a message of the wrong size, received only so that its sender completes
    std::unique_ptr<char[]> memory;
    MPI_Request request;
  };
  void forget(const Receive* receive);
  void reap_discarded();

  MPI_Comm comm_;
  Transport* owner_;
  std::map<std::pair<int, int>, std::deque<Waiting>> waiting_;  // by (peer, tag), oldest first
  std::vector<Discarded> discarded_;
};

}  // namespace braid
