// Byzantine attacks (inject.attack, inject.byzantine_ranks): what a bad rank sends instead of its
// gradient, to measure what the other ranks' aggregation rule (robust_rules.h) makes of it. The
// bad ranks still apply the aggregate like everyone else, so replicas stay identical and the test
// measures the rule, not a diverged replica. From the Flag Aggregator (garfieldpp) and ByzFL code:
//  - sign_flip: -g; scale: -10 g (Flag Aggregator's "reverse");
//  - random: every coordinate drawn from N(0, 1) (ByzFL's Gaussian attack);
//  - drop: g with each coordinate zeroed with probability 0.1 (Flag Aggregator's "drop");
//  - nan: every coordinate NaN;
//  - alie (Baruch et al., 2019, "A little is enough"): mean - z std of the honest gradients, per
//    coordinate, z = inject.alie_z (ByzFL's default 1.5);
//  - ipm (Xie et al., 2020, inner product manipulation): -epsilon times the honest mean,
//    epsilon = inject.ipm_epsilon (0.1, the paper's small-epsilon attack on robust rules).
// The first five need only the bad rank's own gradient and run on it before it is sent
// (attack_outgoing). alie and ipm are omniscient, as in ByzFL's benchmark: they need every honest
// gradient, which no rank holds without a parameter server, so the owner of each chunk, who
// receives every rank's chunk, replaces the bad ranks' chunks before aggregating (attack_rows):
// the same as if the bad ranks had known the honest gradients and sent that. Random draws come
// from SeededRng over (inject.seed, step, rank, coordinate block), the same on any platform.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace braid {

struct AttackOptions {
  std::string name = "none";  // inject.attack: attack_names()
  std::vector<int> ranks;     // inject.byzantine_ranks
  double alie_z = 1.5;        // inject.alie_z
  double ipm_epsilon = 0.1;   // inject.ipm_epsilon
  std::uint64_t seed = 0;     // inject.seed
};

const std::vector<std::string>& attack_names();
bool attacking(const AttackOptions& options);  // an attack and at least one bad rank
bool is_byzantine(const AttackOptions& options, int rank);
// Whether the attack needs the honest gradients (alie, ipm): attack_rows, not attack_outgoing.
bool omniscient(const AttackOptions& options);

// ConfigError for an unknown attack, a bad rank outside [0, ranks) (ranks 0: unknown yet), or an
// attack without bad ranks (and bad ranks without an attack).
void check_attack(const AttackOptions& options, int ranks);

// A bad rank's outgoing gradient (its whole flat gradient, any floating dtype), in place, at
// `step`. No-op for honest ranks and omniscient attacks.
void attack_outgoing(const AttackOptions& options, int rank, std::int64_t step,
                     at::Tensor gradient);

// The chunk owner's rows (P x m, float64, row r from rank r): each bad rank's row replaced by
// the omniscient attack computed from the honest rows. No-op for the other attacks.
void attack_rows(const AttackOptions& options, at::Tensor rows);

}  // namespace braid
