#include "optimizers/robust_exchange.h"

#include <ATen/ATen.h>

#include <cmath>

#include "collectives/collectives.h"
#include "collectives/tensor.h"
#include "common/error.h"
#include "optimizers/state_keys.h"

namespace braid {
namespace {

const std::string kCenter = std::string(kAggregatorPrefix) + "center";

// The alltoallv and allgatherv block sizes: collectives/buffer.h's balanced split into P chunks.
std::vector<std::int64_t> chunk_counts(std::int64_t n, int P) {
  std::vector<std::int64_t> counts(P);
  for (int c = 0; c < P; ++c) counts[c] = split_count(n, P, c);
  return counts;
}

}  // namespace

bool robust_aggregation(const RobustOptions& options) {
  return options.rule.name != "mean" || attacking(options.attack);
}

RobustExchange::RobustExchange(std::shared_ptr<Communicator> comm, RobustOptions options)
    : comm_(std::move(comm)), options_(std::move(options)) {
  check_aggregator(options_.rule, comm_->size());
  check_attack(options_.attack, comm_->size());
}

std::int64_t RobustExchange::statistics_length(const std::string& rule, int P, std::int64_t slots) {
  if (rule == "mean") return slots;
  const std::int64_t q = P + (uses_center(rule) ? 1 : 0);
  return slots + P + (gram_based(rule) ? q * q : 0);
}

std::uint64_t RobustExchange::bytes_sent(const std::string& rule, int P, int rank,
                                         std::int64_t count, std::int64_t slots,
                                         std::size_t element_size) {
  // The alltoall sends every chunk but this rank's; the ring allgather every block but the next
  // rank's (which that rank already holds when the ring ends with it).
  const std::int64_t elements =
      2 * count - split_count(count, P, rank) - split_count(count, P, (rank + 1) % P);
  return static_cast<std::uint64_t>(elements) * element_size +
         static_cast<std::uint64_t>((P - 1) * statistics_length(rule, P, slots)) * sizeof(double);
}

Work RobustExchange::launch(at::Tensor gradients, at::Tensor slots, std::int64_t step) {
  BRAID_CHECK(gradients.device().is_cpu() && gradients.is_contiguous(),
              "robust aggregation runs on contiguous CPU gradients");
  if (center_.defined() && center_.numel() != gradients.numel()) {
    throw CheckpointError(str_cat("the checkpoint's ", kCenter, " has ", center_.numel(),
                                  " elements, the model's gradients ", gradients.numel()));
  }
  const int P = comm_->size();
  const auto bytes = static_cast<std::uint64_t>(gradients.numel() * gradients.element_size());
  dense_.fetch_add(P > 1 ? bytes * 2 * (P - 1) / P : 0, std::memory_order_relaxed);
  OpDesc desc{"robust_aggregate", options_.rule.name, gradients.numel(),
              as_buffer(gradients).dtype};
  return comm_->submit(desc, [this, gradients, slots, step](OpContext& ctx) mutable {
    // The communication thread runs one operation at a time: the counter's growth is ours.
    const std::uint64_t before = comm_->bytes_sent();
    run(ctx, gradients, slots, step);
    sent_.fetch_add(comm_->bytes_sent() - before, std::memory_order_relaxed);
  });
}

at::Tensor RobustExchange::statistics(const at::Tensor& slots, const at::Tensor& finite,
                                      const at::Tensor& rows, const at::Tensor& center) const {
  const std::string& rule = options_.rule.name;
  std::vector<at::Tensor> parts{slots.to(at::kDouble).reshape({-1})};
  if (rule != "mean") parts.push_back(finite.to(at::kDouble));
  if (gram_based(rule)) {
    const at::Tensor x = uses_center(rule) ? at::cat({rows, center.unsqueeze(0)}) : rows;
    parts.push_back(x.matmul(x.t()).reshape({-1}));
  }
  return at::cat(parts);
}

at::Tensor RobustExchange::aggregate(const at::Tensor& rows, const at::Tensor& center,
                                     const std::vector<std::int64_t>& kept, const at::Tensor& gram,
                                     std::int64_t step) const {
  const AggregatorOptions& rule = options_.rule;
  const auto P = rows.size(0);
  const auto dropped = static_cast<int>(P - static_cast<std::int64_t>(kept.size()));
  if (dropped > rule.byzantine) {
    std::string ranks;
    for (std::int64_t r = 0, k = 0; r < P; ++r) {
      if (k < static_cast<std::int64_t>(kept.size()) && kept[k] == r) {
        ++k;
      } else {
        ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
      }
    }
    throw Error(str_cat("step ", step, dropped == 1 ? ": rank " : ": ranks ", ranks,
                        " sent gradients with a NaN or inf, more than the sync.byzantine = ",
                        rule.byzantine, " bad ranks sync.aggregator ", rule.name, " tolerates"));
  }
  const int f = rule.byzantine - dropped;
  const at::Tensor used = rows.index_select(0, at::tensor(kept, at::kLong));
  if (!gram_based(rule.name)) return coordinate_rule(rule, used, f);
  std::vector<std::int64_t> index = kept;
  if (uses_center(rule.name)) index.push_back(P);
  const at::Tensor pick = at::tensor(index, at::kLong);
  const std::vector<double> c =
      gram_rule(rule, gram.index_select(0, pick).index_select(1, pick), f);
  const at::Tensor x = uses_center(rule.name) ? at::cat({used, center.unsqueeze(0)}) : used;
  return at::tensor(c, at::kDouble).matmul(x);
}

void RobustExchange::run(OpContext& ctx, at::Tensor gradients, at::Tensor slots,
                         std::int64_t step) {
  const int P = comm_->size(), me = comm_->rank();
  const std::vector<std::int64_t> counts = chunk_counts(gradients.numel(), P);
  const std::int64_t mine = counts[me], offset = split_offset(gradients.numel(), P, me);
  at::Tensor outgoing = gradients;
  if (is_byzantine(options_.attack, me) && !omniscient(options_.attack)) {
    outgoing = gradients.clone();
    attack_outgoing(options_.attack, me, step, outgoing);
  }
  at::Tensor received = at::empty({P * mine}, gradients.options());
  alltoallv(ctx, as_buffer(outgoing), counts, as_buffer(received),
            std::vector<std::int64_t>(P, mine));
  at::Tensor rows = received.view({P, mine}).to(at::kDouble);
  attack_rows(options_.attack, rows);
  const at::Tensor finite = rows.isfinite().all(1);
  // A row that is dropped must not reach the Gram matrix's other entries; mean drops nothing.
  const bool trust_all = options_.rule.name == "mean";
  if (!trust_all) rows.masked_fill_(finite.logical_not().unsqueeze(1), 0.0);
  const at::Tensor center = center_.defined() ? center_.narrow(0, offset, mine).to(at::kDouble)
                                              : at::zeros({mine}, at::kDouble);

  const at::Tensor stats = statistics(slots, finite, rows, center);
  const std::int64_t L = stats.numel();
  at::Tensor gathered = at::empty({P * L}, at::kDouble);
  allgatherv(ctx, as_buffer(stats), as_buffer(gathered), std::vector<std::int64_t>(P, L));
  at::Tensor sum = at::zeros({L}, at::kDouble);
  for (int r = 0; r < P; ++r) sum += gathered.narrow(0, r * L, L);  // rank order, on every rank
  const std::int64_t k = slots.numel();
  slots.copy_(sum.narrow(0, 0, k).view(slots.sizes()));
  if (k > 0 && slots.reshape({-1})[k - 1].item<double>() != 0) return;  // a non-finite step

  const std::int64_t q = P + (uses_center(options_.rule.name) ? 1 : 0);
  const at::Tensor gram =
      gram_based(options_.rule.name) ? sum.narrow(0, k + P, q * q).view({q, q}) : at::Tensor();
  std::vector<std::int64_t> kept;
  for (int r = 0; r < P; ++r) {
    // Finite in every owner's chunk (the flags' sum over owners is P), and a squared norm that
    // did not overflow (|g|^2 beyond a double would make every distance inf or NaN).
    const bool sent_finite = trust_all || sum[k + r].item<double>() == P;
    if (sent_finite && (!gram.defined() || std::isfinite(gram[r][r].item<double>())))
      kept.push_back(r);
  }
  if (gram.defined() && uses_center(options_.rule.name) &&
      !std::isfinite(gram[P][P].item<double>())) {
    throw Error(str_cat("step ", step, ": the previous aggregate of sync.aggregator ",
                        options_.rule.name, " is not finite"));
  }
  const at::Tensor chunk = aggregate(rows, center, kept, gram, step).to(gradients.scalar_type());
  allgatherv(ctx, as_buffer(chunk), as_buffer(gradients), counts);
  if (uses_center(options_.rule.name)) center_ = gradients.clone();
}

NamedTensors RobustExchange::state() const {
  if (!uses_center(options_.rule.name) || !center_.defined()) return {};
  return {{kCenter, center_}};
}

void RobustExchange::load_state(const NamedTensors& state) {
  for (const auto& [name, tensor] : state) {
    if (name != kCenter) {
      throw CheckpointError(str_cat("unexpected aggregator state '", name, "'"));
    }
    // Saved under centered_clip and resumed under another rule: not needed.
    if (!uses_center(options_.rule.name)) continue;
    center_ = tensor.clone();
  }
}

}  // namespace braid
