#include "optimizers/robust_rules.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"
#include "common/statistics.h"

namespace braid {

const std::vector<std::string>& aggregator_names() {
  static const std::vector<std::string> names = {
      "mean", "median", "trimmed_mean", "krum", "multi_krum", "centered_clip", "flag"};
  return names;
}

bool gram_based(const std::string& name) {
  return name == "krum" || name == "multi_krum" || name == "centered_clip" || name == "flag";
}

bool uses_center(const std::string& name) { return name == "centered_clip"; }

namespace {

// The most bad inputs of n the rule tolerates, and why.
std::pair<int, const char*> byzantine_limit(const std::string& name, int n) {
  if (name == "mean") return {0, "an average trusts every rank"};
  // Written out: (n - 3) / 2 truncates -1/2 to 0, and Krum cannot run on 2 ranks.
  if (name == "krum" || name == "multi_krum") return {n >= 3 ? (n - 3) / 2 : -1, "n >= 2f + 3"};
  return {(n - 1) / 2, "f < n/2"};
}

void check_ranges(const AggregatorOptions& o) {
  const auto& names = aggregator_names();
  if (std::find(names.begin(), names.end(), o.name) == names.end()) {
    throw ConfigError(
        str_cat("sync.aggregator: unknown rule '", o.name, "' (valid: ", join(names), ")"));
  }
  auto require = [](bool ok, const char* key, const char* range, auto value) {
    if (!ok) throw ConfigError(str_cat(key, ": must be ", range, ", got ", value));
  };
  require(o.byzantine >= 0, "sync.byzantine", ">= 0", o.byzantine);
  require(o.trim >= 0 && o.trim < 0.5, "sync.trim", "in [0, 0.5) (0: sync.byzantine at each end)",
          o.trim);
  require(o.krum_m >= 0, "sync.krum_m", ">= 0 (0: ranks - sync.byzantine)", o.krum_m);
  require(o.clip_radius >= 0, "sync.clip_radius", ">= 0 (0: the median distance)", o.clip_radius);
  require(o.clip_iterations >= 1, "sync.clip_iterations", ">= 1", o.clip_iterations);
  require(o.flag_subspace >= 0, "sync.flag_subspace", ">= 0 (0: half the ranks)", o.flag_subspace);
  require(o.flag_lambda >= 0, "sync.flag_lambda", ">= 0", o.flag_lambda);
  require(o.flag_iterations >= 1, "sync.flag_iterations", ">= 1", o.flag_iterations);
}

}  // namespace

void check_aggregator(const AggregatorOptions& o, int n) {
  check_ranges(o);
  if (n <= 0) return;
  const auto [limit, why] = byzantine_limit(o.name, n);
  if (limit < 0) {
    throw ConfigError(str_cat("sync.aggregator ", o.name, " needs at least 3 ranks (", why,
                              "), the job has ", n));
  }
  if (o.byzantine > limit) {
    throw ConfigError(str_cat("sync.byzantine = ", o.byzantine, ": sync.aggregator ", o.name,
                              " tolerates at most ", limit, " bad ranks of ", n, " (", why, ")"));
  }
  const int k = trimmed_per_side(o, n, o.byzantine);
  if (o.name == "trimmed_mean" && (k < o.byzantine || 2 * k >= n)) {
    throw ConfigError(str_cat("sync.trim = ", o.trim, " cuts ", k, " of ", n,
                              " ranks at each end: trimmed_mean needs at least sync.byzantine (",
                              o.byzantine, ") and fewer than half"));
  }
  if (o.name == "multi_krum" && o.krum_m > n - o.byzantine) {
    throw ConfigError(str_cat("sync.krum_m = ", o.krum_m, ": multi_krum averages at most ranks - ",
                              "sync.byzantine = ", n - o.byzantine, " gradients"));
  }
  if (o.name == "flag" && o.flag_subspace > n) {
    throw ConfigError(str_cat("sync.flag_subspace = ", o.flag_subspace,
                              ": the subspace cannot have more dimensions than the ", n, " ranks"));
  }
}

int trimmed_per_side(const AggregatorOptions& o, int n, int f) {
  return o.trim > 0 ? static_cast<int>(std::floor(o.trim * n)) : f;
}

at::Tensor coordinate_rule(const AggregatorOptions& o, const at::Tensor& rows, int f) {
  const auto n = rows.size(0);
  BRAID_CHECK(n > 0, "no inputs to aggregate");
  if (o.name == "mean") return rows.sum(0) / static_cast<double>(n);
  const at::Tensor sorted = std::get<0>(rows.sort(0));
  if (o.name == "median") {
    if (n % 2 == 1) return sorted[n / 2].clone();
    return (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
  }
  BRAID_CHECK(o.name == "trimmed_mean", "not a coordinate-wise rule: ", o.name);
  const int k = trimmed_per_side(o, static_cast<int>(n), f);
  BRAID_CHECK(2 * k < n, "trimmed_mean cuts ", k, " of ", n, " at each end");
  return sorted.narrow(0, k, n - 2 * k).sum(0) / static_cast<double>(n - 2 * k);
}

namespace {

using Matrix = std::vector<std::vector<double>>;

Matrix to_matrix(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kDouble).contiguous();
  const auto n = c.size(0);
  Matrix m(n, std::vector<double>(n));
  const double* p = c.data_ptr<double>();
  for (std::int64_t i = 0; i < n; ++i) std::copy(p + i * n, p + (i + 1) * n, m[i].begin());
  return m;
}

// Squared distance between inputs i and j from their Gram matrix, never below zero (rounding).
double squared_distance(const Matrix& g, int i, int j) {
  return std::max(0.0, g[i][i] + g[j][j] - 2 * g[i][j]);
}

std::vector<double> krum(const Matrix& g, int n, int f, int m) {
  std::vector<double> score(n, 0.0);
  const int neighbours = n - f - 2;
  for (int i = 0; i < n; ++i) {
    std::vector<double> d;
    for (int j = 0; j < n; ++j)
      if (j != i) d.push_back(squared_distance(g, i, j));
    std::sort(d.begin(), d.end());
    score[i] = std::accumulate(d.begin(), d.begin() + neighbours, 0.0);
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return score[a] < score[b]; });
  std::vector<double> c(n, 0.0);
  for (int k = 0; k < m; ++k) c[order[k]] = 1.0 / m;
  return c;
}

// u (n + 1 coefficients, the center last) from v = the center, L clipped steps.
std::vector<double> centered_clip(const AggregatorOptions& o, const Matrix& g, int n) {
  std::vector<double> u(n + 1, 0.0);
  u[n] = 1;
  for (int it = 0; it < o.clip_iterations; ++it) {
    std::vector<double> gu(n + 1, 0.0);
    for (int i = 0; i <= n; ++i)
      for (int j = 0; j <= n; ++j) gu[i] += g[i][j] * u[j];
    const double ugu = std::inner_product(u.begin(), u.end(), gu.begin(), 0.0);
    std::vector<double> d(n);
    for (int i = 0; i < n; ++i) d[i] = std::sqrt(std::max(0.0, g[i][i] - 2 * gu[i] + ugu));
    const double tau = o.clip_radius > 0 ? o.clip_radius : median(d);
    std::vector<double> step(n + 1, 0.0);
    for (int i = 0; i < n; ++i) {
      const double s = d[i] > tau ? tau / d[i] : 1.0;
      for (int j = 0; j <= n; ++j) step[j] -= s * u[j] / n;
      step[i] += s / n;
    }
    for (int j = 0; j <= n; ++j) u[j] += step[j];
  }
  return u;
}

// Flag Aggregator in the span of the inputs: Y = X A, X the normalized inputs (columns), K = X^T X.
// An IRLS step takes the top r left singular vectors of M = X C, C the weighted columns'
// coefficients; they are X K^{+1/2} s for the top eigenvectors s of K^{1/2} (C C^T) K^{1/2}, an
// n x n problem even when the pairwise terms make C n x n^2.
class FlagSubspace {
 public:
  FlagSubspace(const AggregatorOptions& o, const at::Tensor& gram, int n)
      : n_(n), lambda_(o.flag_lambda) {
    norms_ = gram.diagonal().clamp_min(0).sqrt();
    inverse_norms_ = at::where(norms_ > 0, 1.0 / norms_, at::zeros_like(norms_));
    k_ = gram * inverse_norms_.unsqueeze(0) * inverse_norms_.unsqueeze(1);
    r_ = o.flag_subspace > 0 ? o.flag_subspace : (n + 1) / 2;
    auto [values, vectors] = at::linalg_eigh((k_ + k_.t()) / 2.0);
    const double largest = n > 0 ? values[-1].item<double>() : 0.0;
    const at::Tensor kept = values > std::max(largest * 1e-12, 0.0);
    const at::Tensor root = at::where(kept, values.clamp_min(0).sqrt(), at::zeros_like(values));
    const at::Tensor inverse = at::where(kept, 1.0 / root, at::zeros_like(values));
    k_half_ = vectors.matmul(at::diag(root)).matmul(vectors.t());
    k_inverse_half_ = vectors.matmul(at::diag(inverse)).matmul(vectors.t());
  }

  std::vector<double> coefficients(int iterations) {
    at::Tensor a = top_subspace(at::eye(n_, k_.options()));  // the unweighted flag mean
    double err = objective(a);
    for (int it = 0; it < iterations && err > 1e-10; ++it) {
      const at::Tensor next = top_subspace(weighted_columns_gram(a));
      const double next_err = objective(next);
      const double diff = err - next_err;
      if (diff > 0) a = next, err = next_err;
      if (diff <= 1e-10) break;
    }
    // (median |g_i| / n) sum_i Y Y^T x_i, written on the inputs g_i = |g_i| x_i.
    const at::Tensor on_x = a.matmul(a.t().matmul(k_.sum(1)));
    const double scale = median(to_vector(norms_)) / n_;
    return to_vector(on_x * inverse_norms_ * scale);
  }

 private:
  static std::vector<double> to_vector(const at::Tensor& t) {
    const at::Tensor c = t.contiguous();
    return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
  }

  // The reference's squared column weight for a projection p: ((|1 - p| + eps)^(-1/4))^2.
  static double squared_weight(double p) { return 1.0 / std::sqrt(std::abs(1 - p) + 1e-7); }

  // C C^T of the IRLS step's columns: each x_i, and with lambda > 0 each x_i - x_j (i != j),
  // scaled by their weights; the difference columns add a weighted graph Laplacian.
  at::Tensor weighted_columns_gram(const at::Tensor& a) const {
    const at::Tensor p = a.t().matmul(k_).t().contiguous();  // row i: Y^T x_i
    const auto proj = p.accessor<double, 2>();
    at::Tensor g = at::zeros({n_, n_}, k_.options());
    auto out = g.accessor<double, 2>();
    auto squared_distance = [&](int i, int j) {
      double d = 0;
      for (std::int64_t k = 0; k < p.size(1); ++k) {
        const double x = proj[i][k] - (j >= 0 ? proj[j][k] : 0.0);
        d += x * x;
      }
      return d;
    };
    for (int i = 0; i < n_; ++i) out[i][i] = squared_weight(squared_distance(i, -1));
    if (lambda_ <= 0) return g;
    const double scale = lambda_ / (n_ * (n_ - 1.0));
    for (int i = 0; i < n_; ++i) {
      for (int j = 0; j < n_; ++j) {
        if (i == j) continue;
        const double c2 = squared_weight(squared_distance(i, j)) * scale * scale;
        out[i][i] += c2;
        out[j][j] += c2;
        out[i][j] -= c2;
        out[j][i] -= c2;
      }
    }
    return g;
  }

  // The top r left singular vectors of M (C C^T = `columns_gram`) as coefficients on X.
  at::Tensor top_subspace(const at::Tensor& columns_gram) const {
    const at::Tensor s = k_half_.matmul(columns_gram).matmul(k_half_);
    auto [values, vectors] = at::linalg_eigh((s + s.t()) / 2.0);
    const double largest = values.numel() ? values[-1].item<double>() : 0.0;
    std::vector<at::Tensor> columns;
    for (auto k = values.numel() - 1; k >= 0 && static_cast<int>(columns.size()) < r_; --k) {
      const double v = values[k].item<double>();
      if (v <= largest * 1e-12 || v <= 0) break;
      columns.push_back(k_inverse_half_.matmul(vectors.select(1, k)));
    }
    if (columns.empty()) return at::zeros({n_, 1}, k_.options());
    return at::stack(columns, 1);
  }

  // sum_i sqrt(max(0, 1 - |Y^T x_i|^2)), over the inputs that are not zero.
  double objective(const at::Tensor& a) const {
    const at::Tensor p = a.t().matmul(k_).pow(2).sum(0);
    const at::Tensor s = (1 - p).clamp_min(0).sqrt() * (norms_ > 0);
    return s.sum().item<double>();
  }

  int n_;
  double lambda_;
  int r_ = 1;
  at::Tensor norms_, inverse_norms_, k_, k_half_, k_inverse_half_;
};

}  // namespace

std::vector<double> gram_rule(const AggregatorOptions& o, const at::Tensor& gram, int f) {
  const auto n = static_cast<int>(gram.size(0)) - (uses_center(o.name) ? 1 : 0);
  BRAID_CHECK(n > 0, "no inputs to aggregate");
  if (o.name == "krum" || o.name == "multi_krum") {
    const int m = o.name == "krum" ? 1 : (o.krum_m > 0 ? std::min(o.krum_m, n - f) : n - f);
    BRAID_CHECK(n - f - 2 >= 1 && m >= 1, o.name, " of ", n, " inputs with f = ", f);
    return krum(to_matrix(gram), n, f, m);
  }
  if (o.name == "centered_clip") return centered_clip(o, to_matrix(gram), n);
  BRAID_CHECK(o.name == "flag", "not a Gram-based rule: ", o.name);
  return FlagSubspace(o, gram.to(at::kDouble), n).coefficients(o.flag_iterations);
}

}  // namespace braid
