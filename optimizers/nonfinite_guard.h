// NonFiniteGuard: the one policy every strategy applies when a gradient is not finite
// (train.nonfinite). A NaN or inf gradient must not reach a compressor (sign and qsgd would take a
// NaN scale for a corrupt peer, e3m0 would encode it as 0), an error-feedback residual (inf - inf
// stays NaN for ever) or the model. So each strategy checks what it is about to send, before it is
// encoded, and the ranks agree on the outcome by a flag carried in a message they exchange anyway:
//  - error: every rank raises NonFiniteError with one message naming the first rank (lowest), the
//    first parameter on it (registration order) and the step; `braid` exits 1 on every rank;
//  - skip: every rank drops the step: no optimizer step, and residuals, momenta and outer state
//    stay as they were (the step clock still advances, as the data does). skipped() counts them,
//    like mixed-precision loss scaling counts its skipped steps.
// Where each strategy checks and what its flag rides on is written in its header; the costs are in
// docs/config.md (train.nonfinite). Only the training thread calls a guard.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace braid {

class Communicator;

enum class NonFinitePolicy { kError, kSkip };

// error, skip: the values train.nonfinite accepts.
const std::vector<std::string>& nonfinite_policy_names();
// ConfigError naming train.nonfinite and the valid values for anything else.
NonFinitePolicy parse_nonfinite_policy(const std::string& name);

// Whether every element of `t` is finite. One pass (a sum, which is finite exactly when every
// element is, unless finite values overflow it; only then are the elements tested one by one).
bool all_finite(const at::Tensor& t);

// The first of `tensors` with an element that is not finite, or -1.
int first_nonfinite(const std::vector<at::Tensor>& tensors);

// What a rank found: its first non-finite parameter (-1: none), the step it saw it at, and in
// what: a gradient, or a local-update method's pseudo-gradient (anchor - parameters).
struct NonFiniteFinding {
  int parameter = -1;
  std::int64_t step = 0;
  bool pseudo_gradient = false;
  bool found() const { return parameter >= 0; }
};

class NonFiniteGuard {
 public:
  // `names`: every parameter's name, in registration order (the indices findings use).
  NonFiniteGuard(NonFinitePolicy policy, std::vector<std::string> names);
  NonFinitePolicy policy() const { return policy_; }
  bool skips() const { return policy_ == NonFinitePolicy::kSkip; }

  // Collective, on every rank once the ranks agreed that some rank found a non-finite value:
  // error throws NonFiniteError naming the first finding (earliest step, then lowest rank),
  // after one small allgather of every rank's `mine`; skip counts a skipped step.
  void on_agreed(Communicator& comm, const NonFiniteFinding& mine);
  // Collective: agreement and, for error, the message in one allgather of every rank's finding
  // (three int64 per rank; for strategies with no message of their own to carry a flag). Returns
  // whether some rank found one (then the step is skipped, or this threw).
  bool agree(Communicator& comm, const NonFiniteFinding& mine);
  // error: throws the message for `rank`'s finding, known on every rank already.
  [[noreturn]] void raise(int rank, const NonFiniteFinding& finding) const;
  // skip: counts a skipped step without any message (the caller agreed already).
  void count_skip() { ++skipped_; }

  std::int64_t skipped() const { return skipped_; }
  const std::string& name(int parameter) const { return names_.at(parameter); }

 private:
  NonFinitePolicy policy_;
  std::vector<std::string> names_;
  std::int64_t skipped_ = 0;
};

}  // namespace braid
