#include "collectives/mpi_receives.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "collectives/transport_mpi.h"
#include "common/error.h"

namespace braid {

namespace {

// How long a destructor waits for a matched message to finish arriving.
constexpr auto kMatchedGrace = std::chrono::seconds(10);

[[noreturn]] void abandon_receive(int peer, int tag, std::size_t bytes) {
  std::fprintf(stderr,
               "braid: a receive of %zu bytes from rank %d (tag %d) was given up after its message "
               "had matched, and the message did not finish arriving within %lld s; MPI may "
               "still write into its buffer, so the job ends here (MPI_Abort)\n",
               bytes, peer, tag,
               static_cast<long long>(
                   std::chrono::duration_cast<std::chrono::seconds>(kMatchedGrace).count()));
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

}  // namespace

bool settle(MPI_Request& request, Clock::duration grace) {
  bool failed = false;
  bool done = poll_until(
      [&] {
        int flag = 0;
        failed = MPI_Test(&request, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS;
        return failed || flag != 0;
      },
      Clock::now() + grace, nullptr);
  return done && !failed;
}

class MpiReceives::Receive : public Request {
 public:
  Receive(MpiReceives* queues, Transport* owner, char* data, std::size_t bytes, int peer, int tag)
      : Request(peer, tag, bytes, /*is_recv=*/true), queues_(queues), owner_(owner), data_(data) {}

  ~Receive() override {
    queues_->forget(this);
    for (Part& part : parts_) {
      if (part.request != MPI_REQUEST_NULL && !settle(part.request, kMatchedGrace)) {
        abandon_receive(peer(), tag(), bytes());
      }
    }
  }

  std::size_t add_part(std::size_t offset, std::size_t bytes) {
    parts_.push_back({offset, bytes});
    return parts_.size() - 1;
  }

  // match(): the message for `part` is `message`, of `size` bytes.
  void matched(std::size_t index, MPI_Message& message, std::size_t size,
               std::vector<Discarded>& discarded) {
    Part& part = parts_[index];
    part.matched = true;
    if (size == part.bytes) {
      BRAID_MPI_CHECK(MPI_Imrecv(data_ + part.offset, static_cast<int>(size), MPI_BYTE, &message,
                                 &part.request));
      return;
    }
    Discarded drop{std::make_unique<char[]>(std::max<std::size_t>(size, 1)), MPI_REQUEST_NULL};
    BRAID_MPI_CHECK(
        MPI_Imrecv(drop.memory.get(), static_cast<int>(size), MPI_BYTE, &message, &drop.request));
    discarded.push_back(std::move(drop));
    if (error_.empty()) {
      error_ = str_cat("message from rank ", peer(), " with tag ", tag(), " has ", size,
                       " bytes, receiver expected ", part.bytes,
                       " (did the ranks pass different counts or dtypes?)");
    }
  }

  bool test() override {
    if (done_) return true;
    queues_->match();
    if (!error_.empty()) throw CommError(error_);
    for (Part& part : parts_) {
      if (!part.matched) return false;
      if (part.request == MPI_REQUEST_NULL) continue;
      int flag = 0;
      MPI_Status status;
      const int rc = MPI_Test(&part.request, &flag, &status);
      if (rc != MPI_SUCCESS) {
        mpi_check(rc, str_cat("receive from rank ", peer(), " (tag ", tag(), ")").c_str());
      }
      if (!flag) return false;
    }
    done_ = true;
    owner_->count(*this);
    return true;
  }

 private:
  struct Part {
    std::size_t offset, bytes;
    bool matched = false;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  MpiReceives* queues_;
  Transport* owner_;
  char* data_;
  std::vector<Part> parts_;
  std::string error_;
  bool done_ = false;
};

MpiReceives::~MpiReceives() {
  // Receives are destroyed before their transport; what remains are discarded messages, whose
  // memory is kept (leaked) if MPI has not finished with it in time.
  for (Discarded& drop : discarded_) {
    if (!settle(drop.request, kMatchedGrace)) (void)drop.memory.release();
  }
}

RequestPtr MpiReceives::post(void* data, std::size_t bytes, int peer, int tag,
                             std::size_t max_message) {
  auto receive =
      std::make_unique<Receive>(this, owner_, static_cast<char*>(data), bytes, peer, tag);
  auto& queue = waiting_[{peer, tag}];
  std::size_t offset = 0;
  do {
    const std::size_t part = std::min(max_message, bytes - offset);
    queue.push_back({receive.get(), receive->add_part(offset, part)});
    offset += part;
  } while (offset < bytes);
  return receive;
}

void MpiReceives::match() {
  reap_discarded();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    auto& [key, queue] = *it;
    while (!queue.empty()) {
      int flag = 0;
      MPI_Message message = MPI_MESSAGE_NULL;
      MPI_Status status;
      BRAID_MPI_CHECK(MPI_Improbe(key.first, key.second, comm_, &flag, &message, &status));
      if (!flag) break;
      int size = 0;
      BRAID_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &size));
      const Waiting next = queue.front();
      queue.pop_front();
      next.receive->matched(next.part, message, static_cast<std::size_t>(size), discarded_);
    }
    it = queue.empty() ? waiting_.erase(it) : std::next(it);
  }
}

void MpiReceives::forget(const Receive* receive) {
  auto it = waiting_.find({receive->peer(), receive->tag()});
  if (it == waiting_.end()) return;
  auto& queue = it->second;
  queue.erase(std::remove_if(queue.begin(), queue.end(),
                             [&](const Waiting& waiting) { return waiting.receive == receive; }),
              queue.end());
  if (queue.empty()) waiting_.erase(it);
}

void MpiReceives::reap_discarded() {
  discarded_.erase(std::remove_if(discarded_.begin(), discarded_.end(),
                                  [](Discarded& drop) {
                                    int flag = 0;
                                    MPI_Test(&drop.request, &flag, MPI_STATUS_IGNORE);
                                    return flag != 0;
                                  }),
                   discarded_.end());
}

}  // namespace braid
