// Robust aggregation rules (sync.aggregator): what every rank makes of the P gradients of a step
// when some ranks may send garbage (a broken GPU, corrupt data, a bug, an attack). Pure float64
// functions of the inputs; robust_exchange.h moves the data so that each rule runs at the scale
// of an allreduce.
//
// Two kinds of rule:
//  - coordinate-wise (median, trimmed_mean): each coordinate on its own, so the owner of a chunk
//    of coordinates computes that chunk from every rank's chunk (coordinate_rule);
//  - from distances and angles (krum, multi_krum, centered_clip, flag): the aggregate is a
//    combination sum_i c_i g_i of the inputs (centered_clip: plus c_center v, v the previous
//    aggregate) whose coefficients depend only on the Gram matrix G_ij = <g_i, g_j>, which
//    owners build chunk by chunk and sum (gram_rule). Every rank computes the same coefficients
//    from the same Gram matrix.
//
// The rules, n inputs of which at most f are bad:
//  - mean: (1/n) sum_i g_i. Tolerates none.
//  - median: per coordinate, the middle value (n even: the mean of the two middle ones). f < n/2.
//  - trimmed_mean: per coordinate, the mean after cutting the k largest and k smallest values,
//    k = floor(trim n), default k = f (Yin et al., 2018). k >= f and 2k < n.
//  - krum: the input whose n - f - 2 nearest neighbours are nearest in squared L2 (Blanchard
//    et al., 2017; ties: the lowest rank); multi_krum averages the m best by that score (default
//    m = n - f). n >= 2f + 3.
//  - centered_clip: v <- v + (1/n) sum_i clip_tau(g_i - v), L times from v = the previous
//    step's aggregate (zero at first), clip_tau(z) = z min(1, tau/|z|) (Karimireddy, He and
//    Jaggi, 2021). tau = clip_radius, or with clip_radius 0 the median of |g_i - v| at each
//    iteration (braid's default: the paper's fixed tau depends on the model's gradient scale).
//    f < n/2.
//  - flag: Flag Aggregator (Almasi et al., ICLR 2024): x_i = g_i/|g_i|; the r-dimensional
//    subspace Y that most x_i lie close to, by IRLS on the flag median's objective
//    sum_i sqrt(1 - |Y^T x_i|^2): each iteration weights x_i by (|1 - |Y^T x_i|^2| + 1e-7)^(-1/4)
//    (with flag_lambda > 0 also every difference x_i - x_j, by that weight times
//    lambda/(n(n-1))) and takes the top r left singular vectors; an iterate is kept only if the
//    objective went down. Output: (median_i |g_i| / n) sum_i Y Y^T x_i. Departures from the
//    reference code (hamidralmasi/FlagAggregator): it starts from a random Y and runs one
//    iteration, so its output can be the random start's projection; here Y starts from the
//    unweighted flag mean (top r singular vectors of the x_i) and flag_iterations run. The
//    reference returns (1/r) sum_i Y Y^T x_i, a vector of norm about n/r whatever the gradients'
//    scale; here the sum is scaled to the median gradient norm over n, so the learning rate of
//    `mean` carries over. Default r = ceil(n/2), as the paper's runs (8 of 15 workers). f < n/2.
// Inputs a rank sent with a NaN or inf are not inputs: the exchange drops them and counts them
// against f (more of them than f is an error), except under `mean`, which trusts everyone.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace braid {

struct AggregatorOptions {
  std::string name = "mean";  // sync.aggregator: aggregator_names()
  int byzantine = 0;          // sync.byzantine: f, the bad ranks to tolerate
  double trim = 0;            // sync.trim: trimmed_mean's fraction cut at each end (0: f of n)
  int krum_m = 0;             // sync.krum_m: multi_krum's inputs averaged (0: n - f)
  double clip_radius = 0;     // sync.clip_radius: centered_clip's tau (0: the median distance)
  int clip_iterations = 3;    // sync.clip_iterations: centered_clip's L
  int flag_subspace = 0;      // sync.flag_subspace: flag's r (0: ceil(n/2))
  double flag_lambda = 0;     // sync.flag_lambda: flag's pairwise regularisation
  int flag_iterations = 3;    // sync.flag_iterations: flag's IRLS iterations
};

const std::vector<std::string>& aggregator_names();
// Whether the rule is computed from a Gram matrix (krum, multi_krum, centered_clip, flag).
bool gram_based(const std::string& name);
// Whether the Gram matrix includes the previous aggregate (centered_clip).
bool uses_center(const std::string& name);

// ConfigError naming the rule, its limit and the values when f or a parameter does not fit
// `ranks` inputs (and the key: sync.byzantine, sync.trim, ...).
void check_aggregator(const AggregatorOptions& options, int ranks);

// Inputs cut at each end of every coordinate by trimmed_mean, for n inputs of which f are bad.
int trimmed_per_side(const AggregatorOptions& options, int n, int f);

// mean, median or trimmed_mean of the rows of `rows` (n x m, float64), per column.
at::Tensor coordinate_rule(const AggregatorOptions& options, const at::Tensor& rows, int f);

// The coefficients of the aggregate of n inputs from their Gram matrix `gram` (n x n, float64;
// centered_clip: (n + 1) x (n + 1), the center last, and n + 1 coefficients, the center's last).
// f: bad inputs still to tolerate among these n.
std::vector<double> gram_rule(const AggregatorOptions& options, const at::Tensor& gram, int f);

}  // namespace braid
