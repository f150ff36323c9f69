#include "optimizers/nonfinite_guard.h"

#include <ATen/ATen.h>

#include <cmath>

#include "collectives/communicator.h"
#include "common/error.h"

namespace braid {

const std::vector<std::string>& nonfinite_policy_names() {
  static const std::vector<std::string> names = {"error", "skip"};
  return names;
}

NonFinitePolicy parse_nonfinite_policy(const std::string& name) {
  if (name == "error") return NonFinitePolicy::kError;
  if (name == "skip") return NonFinitePolicy::kSkip;
  throw ConfigError(str_cat("train.nonfinite: unknown policy '", name,
                            "' (valid: ", join(nonfinite_policy_names()), ")"));
}

bool all_finite(const at::Tensor& t) {
  if (t.numel() == 0) return true;
  // A NaN or inf makes the sum NaN or inf; a sum of finite values that overflows is rare enough
  // that the exact test, which allocates a mask, runs only then.
  if (std::isfinite(t.sum().item<double>())) return true;
  return at::isfinite(t).all().item<bool>();
}

int first_nonfinite(const std::vector<at::Tensor>& tensors) {
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].defined() && !all_finite(tensors[i])) return static_cast<int>(i);
  }
  return -1;
}

NonFiniteGuard::NonFiniteGuard(NonFinitePolicy policy, std::vector<std::string> names)
    : policy_(policy), names_(std::move(names)) {}

void NonFiniteGuard::on_agreed(Communicator& comm, const NonFiniteFinding& mine) {
  if (skips()) {
    count_skip();
    return;
  }
  if (!agree(comm, mine)) {
    // Every flag comes with a finding, so this is a bug; still stop every rank alike.
    throw NonFiniteError("a gradient was not finite on some rank, and no rank can say where");
  }
}

bool NonFiniteGuard::agree(Communicator& comm, const NonFiniteFinding& mine) {
  constexpr int kFields = 3;
  const int P = comm.size();
  std::vector<std::int64_t> all(kFields * static_cast<std::size_t>(P));
  std::int64_t own[kFields] = {mine.parameter, mine.step, mine.pseudo_gradient ? 1 : 0};
  comm.allgather(Buffer{own, kFields, DType::kInt64},
                 Buffer{all.data(), kFields * P, DType::kInt64})
      .wait();
  int first = -1;
  for (int r = 0; r < P; ++r) {
    if (all[kFields * r] < 0) continue;
    if (first < 0 || all[kFields * r + 1] < all[kFields * first + 1]) first = r;
  }
  if (first < 0) return false;
  if (skips()) {
    count_skip();
    return true;
  }
  const std::int64_t* f = &all[kFields * first];
  raise(first, {static_cast<int>(f[0]), f[1], f[2] != 0});
}

void NonFiniteGuard::raise(int rank, const NonFiniteFinding& finding) const {
  const std::string parameter = finding.parameter < static_cast<int>(names_.size())
                                    ? names_[finding.parameter]
                                    : str_cat("#", finding.parameter);
  throw NonFiniteError(str_cat(
      "non-finite ", finding.pseudo_gradient ? "pseudo-gradient (anchor - parameters)" : "gradient",
      " on rank ", rank, ": parameter '", parameter, "' at step ", finding.step,
      " (train.nonfinite: error; the loss likely diverged: lower optimizer.lr, or set "
      "train.nonfinite=skip to drop such steps)"));
}

}  // namespace braid
