#include "optimizers/fragment_exchange.h"

#include <ATen/ATen.h>

#include "collectives/tensor.h"
#include "common/error.h"
#include "optimizers/nonfinite_guard.h"

namespace braid {
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
  if (two_phase_pays(wire_, numel_, comm_->size())) {
    auto compressor = std::make_unique<CompressorWire>(wire_);
    wire_compressor_ = compressor.get();
    two_phase_ = std::make_unique<TwoPhaseExchange>(std::move(compressor), false);
    mean_ = at::empty_like(flat_);
    return;
  }
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
    // The flagged chunks decode to NaN (compressor_wire.h): the mean is kept only when finite.
    TwoPhaseExchange* path = two_phase_.get();
    CompressorWire* compressor = wire_compressor_;
    at::Tensor mean = mean_;
    const PayloadContext context{fragment_, round, 0};
    return last_ = comm_->submit({"fragment_two_phase", "", numel_, DType::kUInt8},
                                 [=](OpContext& ctx) mutable {
                                   compressor->set_flag(flagged);
                                   path->run(ctx, flat, context, mean, nullptr);
                                   const bool any = !at::isfinite(mean).all().item<bool>();
                                   any_flagged->store(any);
                                   if (!any) flat.copy_(mean);
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
