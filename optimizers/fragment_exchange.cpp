#include "optimizers/fragment_exchange.h"

#include <ATen/ATen.h>

#include "collectives/collectives.h"
#include "collectives/tensor.h"
#include "common/error.h"
#include "compression/payload.h"
#include "compression/two_phase_exchange.h"
#include "optimizers/nonfinite_guard.h"

namespace braid {
namespace {

// What one rank sends for `values`: its wire bytes and the flag byte last (1: not encoded).
std::vector<std::uint8_t> flagged_payload(WireFormat wire, const at::Tensor& values, bool flagged) {
  std::vector<std::uint8_t> out(wire_bytes(wire, values.numel()) + 1, 0);
  if (flagged) {
    out.back() = 1;
  } else {
    wire_encode(wire, values, out.data());
  }
  return out;
}

// Whether a payload received for `count` elements is flagged; CommError when its size does not
// fit (before its flag byte or values are trusted).
bool flagged_on_receipt(WireFormat wire, const std::vector<std::uint8_t>& payload,
                        std::int64_t count, const PayloadContext& context) {
  const std::size_t expected = wire_bytes(wire, count) + 1;
  if (payload.size() != expected) {
    throw_payload_error(context, str_cat(payload.size(), " bytes, expected ", expected));
  }
  return payload.back() != 0;
}

// The two-phase mean of every rank's `flat` into `flat` (see the header); returns whether some
// rank's values were flagged, in which case `flat` is left as it was.
bool two_phase_mean(OpContext& ctx, WireFormat wire, at::Tensor& flat, bool flagged,
                    PayloadContext context) {
  const int P = ctx.size();
  const std::int64_t n = flat.numel();
  std::vector<std::vector<std::uint8_t>> to_owner(P);
  for (int c = 0; c < P; ++c) {
    const auto [offset, count] = TwoPhaseExchange::chunk(n, P, c);
    to_owner[c] = flagged_payload(wire, flat.narrow(0, offset, count), flagged);
  }
  const std::vector<std::vector<std::uint8_t>> received = alltoall_bytes(ctx, to_owner);
  const auto [mine_offset, mine_count] = TwoPhaseExchange::chunk(n, P, ctx.rank());
  bool chunk_flagged = false;
  for (int r = 0; r < P; ++r) {
    context.source_rank = r;
    chunk_flagged = flagged_on_receipt(wire, received[r], mine_count, context) || chunk_flagged;
  }
  at::Tensor sum = at::zeros({mine_count}, flat.options());
  if (!chunk_flagged) {
    for (int r = 0; r < P; ++r) {
      context.source_rank = r;
      wire_decode_add(wire, received[r].data(), received[r].size() - 1, sum, context);
    }
    sum.div_(P);
  }
  const std::vector<std::vector<std::uint8_t>> owned =
      allgather_bytes(ctx, flagged_payload(wire, sum, chunk_flagged));
  bool any = false;
  for (int c = 0; c < P; ++c) {
    context.source_rank = c;
    any =
        flagged_on_receipt(wire, owned[c], TwoPhaseExchange::chunk(n, P, c).second, context) || any;
  }
  if (any) return true;
  for (int c = 0; c < P; ++c) {
    const auto [offset, count] = TwoPhaseExchange::chunk(n, P, c);
    at::Tensor chunk = flat.narrow(0, offset, count);
    chunk.zero_();
    context.source_rank = c;
    wire_decode_add(wire, owned[c].data(), owned[c].size() - 1, chunk, context);
  }
  return false;
}

}  // namespace

bool FragmentExchange::two_phase_pays(WireFormat wire, std::int64_t numel, int ranks) {
  if (wire == WireFormat::kFloat32 || ranks < 2) return false;
  const auto gathered = static_cast<std::uint64_t>(ranks) * (wire_bytes(wire, numel) + 1);
  return gathered >= 8 * static_cast<std::uint64_t>(numel);
}

FragmentExchange::FragmentExchange(std::shared_ptr<Communicator> comm,
                                   const std::vector<at::Tensor>& like, WireFormat wire,
                                   const ParameterExchangeOptions& dense, int fragment)
    : comm_(std::move(comm)), wire_(wire), fragment_(fragment), like_(like) {
  BRAID_CHECK(!like.empty(), "fragment ", fragment, " has no tensors");
  for (const at::Tensor& t : like) {
    offsets_.push_back(numel_);
    numel_ += t.numel();
  }
  if (wire_ == WireFormat::kFloat32) {
    dense_ = std::make_unique<ParameterExchange>(comm_, like, dense);
    return;
  }
  for (const at::Tensor& t : like) {
    BRAID_CHECK(t.scalar_type() == like.front().scalar_type(), "fragment ", fragment,
                " mixes anchor dtypes");
  }
  flat_ = at::zeros({numel_}, like.front().options());
  flagged_ = std::make_shared<std::atomic<bool>>(false);
  two_phase_ = two_phase_pays(wire_, numel_, comm_->size());
  if (two_phase_) return;
  const auto bytes = static_cast<std::int64_t>(wire_bytes(wire_, numel_)) + 1;  // + the flag
  mine_ = at::zeros({bytes}, at::kByte);
  gathered_ = at::zeros({bytes * comm_->size()}, at::kByte);
}

FragmentExchange::~FragmentExchange() {
  if (!in_flight()) return;
  comm_->abort("a fragment exchange was destroyed while in flight");
  try {
    last_.wait();
  } catch (const std::exception&) {
    // Whoever launched it failed already; its error was or will be reported there.
  }
}

at::Tensor FragmentExchange::view(int k) const {
  if (dense_) return dense_->view(k);
  return flat_.narrow(0, offsets_.at(k), like_.at(k).numel()).view(like_.at(k).sizes());
}

Work FragmentExchange::launch(std::int64_t round, bool flag) {
  BRAID_CHECK(!in_flight(), "fragment ", fragment_, " launched with an exchange in flight");
  ++launches_;
  if (dense_) return last_ = dense_->launch(round, flag);
  first_nonfinite_ = -1;
  for (std::size_t k = 0; k < like_.size() && first_nonfinite_ < 0; ++k)
    if (!all_finite(view(static_cast<int>(k)))) first_nonfinite_ = static_cast<int>(k);
  const bool flagged = flag || first_nonfinite_ >= 0;
  const WireFormat wire = wire_;
  at::Tensor flat = flat_;
  std::shared_ptr<std::atomic<bool>> any_flagged = flagged_;
  if (two_phase_) {
    const PayloadContext context{fragment_, round, 0};
    return last_ = comm_->submit(
               {"fragment_two_phase", "", numel_, DType::kUInt8}, [=](OpContext& ctx) mutable {
                 any_flagged->store(two_phase_mean(ctx, wire, flat, flagged, context));
               });
  }
  const std::size_t bytes = static_cast<std::size_t>(mine_.numel());
  mine_.data_ptr<std::uint8_t>()[bytes - 1] = flagged ? 1 : 0;
  // The jobs run in order on the communication thread and hold the tensors they touch.
  at::Tensor mine = mine_, gathered = gathered_;
  (void)comm_->submit({"fragment_encode", "", numel_, DType::kUInt8}, [=](OpContext&) {
    if (!flagged) wire_encode(wire, flat, mine.data_ptr<std::uint8_t>());
  });
  (void)comm_->allgather(as_buffer(mine_), as_buffer(gathered_));
  const int size = comm_->size(), fragment = fragment_;
  last_ = comm_->submit({"fragment_decode", "", numel_, DType::kUInt8}, [=](OpContext&) {
    const std::uint8_t* payloads = gathered.data_ptr<std::uint8_t>();
    bool any = false;
    for (int r = 0; r < size; ++r) any = any || payloads[(r + 1) * bytes - 1] != 0;
    any_flagged->store(any);
    if (any) return;  // nothing to average: the owner drops this exchange
    at::Tensor sum = flat;
    sum.zero_();
    for (int r = 0; r < size; ++r) {
      PayloadContext context;
      context.bucket = fragment;
      context.step = round;
      context.source_rank = r;
      wire_decode_add(wire, payloads + r * bytes, bytes - 1, sum, context);
    }
    sum.div_(size);
  });
  return last_;
}

int FragmentExchange::first_nonfinite() const {
  return dense_ ? dense_->first_nonfinite() : first_nonfinite_;
}

bool FragmentExchange::nonfinite_anywhere() const {
  BRAID_CHECK(!in_flight(), "fragment ", fragment_, ": nonfinite_anywhere() while in flight");
  return dense_ ? dense_->nonfinite_anywhere() : flagged_->load();
}

std::uint64_t FragmentExchange::bytes_per_launch() const {
  const auto P = static_cast<std::uint64_t>(comm_->size());
  const auto dense = static_cast<std::uint64_t>(2 * (P - 1) * 4 * numel_ / P);
  if (wire_ == WireFormat::kFloat32) return dense;
  if (!two_phase_) return (P - 1) * (wire_bytes(wire_, numel_) + 1);
  std::uint64_t others = 0;
  for (int c = 0; c < comm_->size(); ++c) {
    if (c != comm_->rank())
      others += wire_bytes(wire_, TwoPhaseExchange::chunk(numel_, comm_->size(), c).second) + 1;
  }
  return 2 * others + 16 * (P - 1);
}

std::uint64_t FragmentExchange::bytes_dense() const {
  if (dense_) return dense_->compressed() ? dense_->bytes_dense() : 0;
  const auto P = static_cast<std::uint64_t>(comm_->size());
  return launches_ * static_cast<std::uint64_t>(2 * (P - 1) * 4 * numel_ / P);
}

bool FragmentExchange::compressed() const { return !dense_ || dense_->compressed(); }

NamedTensors FragmentExchange::state() const { return dense_ ? dense_->state() : NamedTensors{}; }

void FragmentExchange::load_state(const NamedTensors& state) {
  if (dense_) {
    dense_->load_state(state);
  } else if (!state.empty()) {
    throw CheckpointError(
        str_cat("has compression state '", state.front().first, "' but outer.wire is not float32"));
  }
}

bool FragmentExchange::state_is_replicated() const {
  return !dense_ || dense_->state_is_replicated();
}

}  // namespace braid
