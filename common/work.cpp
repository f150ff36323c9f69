#include "common/work.h"

#include "common/error.h"

namespace braid {

Work Work::pending(std::string description) {
  Work work;
  work.state_ = std::make_shared<State>();
  work.state_->description = std::move(description);
  return work;
}

void Work::wait(std::chrono::milliseconds timeout) const {
  if (!state_) return;
  std::unique_lock<std::mutex> lock(state_->mutex);
  if (timeout.count() > 0) {
    if (!state_->done_cv.wait_for(lock, timeout, [&] { return state_->done; })) {
      auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - state_->created);
      throw TimeoutError(
          str_cat("timed out waiting for ", state_->description, " after ", waited.count(), " ms"));
    }
  } else {
    state_->done_cv.wait(lock, [&] { return state_->done; });
  }
  if (state_->error) std::rethrow_exception(state_->error);
}

bool Work::is_completed() const noexcept {
  if (!state_) return true;
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->done;
}

void Work::mark_completed(std::exception_ptr error) const {
  BRAID_CHECK(state_, "mark_completed on an empty Work");
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->done = true;
    state_->error = std::move(error);
  }
  state_->done_cv.notify_all();
}

}  // namespace braid
