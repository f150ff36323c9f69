#include "optimizers/parameter_exchange.h"

#include <ATen/ATen.h>

#include <limits>

#include "collectives/tensor.h"
#include "common/error.h"
#include "optimizers/nonfinite_guard.h"

namespace braid {

ParameterExchange::ParameterExchange(std::shared_ptr<Communicator> comm,
                                     const std::vector<at::Tensor>& like,
                                     ParameterExchangeOptions options)
    : comm_(std::move(comm)),
      options_(std::move(options)),
      buckets_(like, options_.bucket_mb, /*usage_slots=*/false) {
  for (const at::Tensor& t : like) numel_ += t.numel();
  const CompressedExchangeOptions& c = options_.compression;
  if (c.compression.name != "none" || c.error_feedback != "none") {
    // A launch is flagged as a whole before it starts: no bucket state needs restoring.
    compressed_ = std::make_unique<CompressedExchange>(comm_, c, buckets_.bucket_count());
    for (int b = 0; b < buckets_.bucket_count(); ++b) {
      compressed_->set_layout(b, buckets_.layout(b));
      flags_.push_back(at::zeros({1}, at::kFloat));
    }
  }
}

ParameterExchange::~ParameterExchange() {
  if (!last_.is_completed()) comm_->abort("a parameter exchange was destroyed while in flight");
  for (const Work& w : parts_) {
    try {
      w.wait();
    } catch (const std::exception&) {
      // Whoever launched it failed already; its error was or will be reported there.
    }
  }
}

at::Tensor ParameterExchange::view(int i) const {
  return buckets_.view(i).view(buckets_.parameter(i).sizes());
}

Work ParameterExchange::launch(std::int64_t round, bool flag) {
  BRAID_CHECK(last_.is_completed(), "ParameterExchange::launch with a launch still in flight");
  first_nonfinite_ = -1;
  for (int b = 0; b < buckets_.bucket_count(); ++b) {
    const int bad = buckets_.check_finite(b);
    if (bad >= 0 && (first_nonfinite_ < 0 || bad < first_nonfinite_)) first_nonfinite_ = bad;
  }
  const bool flagged = flag || first_nonfinite_ >= 0;
  if (flagged && !compressed_ && first_nonfinite_ < 0) {
    buckets_.gradients(0).view(-1)[0] = std::numeric_limits<double>::quiet_NaN();
  }
  std::vector<Work> works;
  for (int b = 0; b < buckets_.bucket_count(); ++b) {
    at::Tensor flat = buckets_.gradients(b);
    if (compressed_) flags_[b].fill_(flagged ? 1 : 0);
    works.push_back(compressed_
                        ? compressed_->launch(b, flat, flags_[b], round)
                        : comm_->allreduce(as_buffer(flat), ReduceOp::kAvg, options_.algorithm));
  }
  // The communication thread runs jobs in order, so this one runs after every bucket's and
  // completes with the first bucket error (a broken communicator fails every later job).
  OpDesc desc{"parameter_exchange_join", "", 0, DType::kFloat32};
  last_ = comm_->submit(desc, [works](OpContext&) {
    for (const Work& w : works) w.wait();
  });
  parts_ = std::move(works);
  parts_.push_back(last_);
  return last_;
}

bool ParameterExchange::nonfinite_anywhere() const {
  BRAID_CHECK(last_.is_completed(), "nonfinite_anywhere() with a launch in flight");
  for (int b = 0; b < buckets_.bucket_count(); ++b) {
    // Summed flags; or the mean itself, which a NaN or inf of any rank made non-finite (a mean
    // that overflowed counts too: it is no use either).
    if (compressed_ ? flags_[b].item<float>() != 0 : !all_finite(buckets_.gradients(b)))
      return true;
  }
  return false;
}

std::uint64_t ParameterExchange::bytes_dense() const {
  return compressed_ ? compressed_->bytes_dense() : 0;
}

NamedTensors ParameterExchange::state() const {
  return compressed_ ? compressed_->state() : NamedTensors{};
}

void ParameterExchange::load_state(const NamedTensors& state) {
  if (compressed_) {
    compressed_->load_state(state);
  } else if (!state.empty()) {
    throw CheckpointError(str_cat("has compression state '", state.front().first,
                                  "' but compression is off (was compression.name changed?)"));
  }
}

bool ParameterExchange::state_is_replicated() const {
  return !compressed_ || compressed_->state_is_replicated();
}

}  // namespace braid
