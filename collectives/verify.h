// A known input pattern and its closed-form reduction, shared by `braid bench --check` and the
// tests: rank r holds pattern(r, i) = ((7r + 3i) mod 9) - 4 at element i. These small integers
// of both signs are exact in every dtype (bfloat16 too) for sums over up to 16 ranks, so every
// algorithm must reproduce expected() exactly; avg of floating types allows the rounding of its
// division (avg_tolerance). uint8 has no pattern (it is never reduced): CheckError.
#pragma once

#include <cstdint>

#include "collectives/buffer.h"

namespace braid {

double pattern(int rank, std::int64_t i);
// The reduction over `ranks` ranks of pattern(., i); avg of integer types truncates.
double expected(ReduceOp op, int ranks, std::int64_t i, bool integral);
void fill_pattern(Buffer buffer, int rank);
// Largest |result - want| accepted for an avg of the pattern in a floating `dtype`.
double avg_tolerance(DType dtype, double want);
// Elements of `buffer` that differ from expected() (beyond avg_tolerance for floating avg).
std::int64_t count_wrong(Buffer buffer, ReduceOp op, int ranks);

}  // namespace braid
