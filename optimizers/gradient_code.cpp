#include "optimizers/gradient_code.h"

#include <cmath>
#include <utility>

#include "common/error.h"

namespace braid {

namespace {

// Solves M x = y for M (rows x cols, row-major, rows >= cols) of full column rank, with y in
// its column space (a consistent system): Gaussian elimination with partial pivoting over all
// rows; the rows left over after elimination are consistent by assumption and ignored. Empty
// when M is singular (to working precision).
std::vector<double> solve_consistent(std::vector<double> m, std::vector<double> y, int rows,
                                     int cols) {
  for (int c = 0; c < cols; ++c) {
    int pivot = c;
    for (int r = c + 1; r < rows; ++r) {
      if (std::abs(m[r * cols + c]) > std::abs(m[pivot * cols + c])) pivot = r;
    }
    if (std::abs(m[pivot * cols + c]) <= 1e-12) return {};
    for (int k = 0; k < cols; ++k) std::swap(m[c * cols + k], m[pivot * cols + k]);
    std::swap(y[c], y[pivot]);
    for (int r = c + 1; r < rows; ++r) {
      const double f = m[r * cols + c] / m[c * cols + c];
      if (f == 0) continue;
      for (int k = c; k < cols; ++k) m[r * cols + k] -= f * m[c * cols + k];
      y[r] -= f * y[c];
    }
  }
  std::vector<double> x(cols);
  for (int c = cols - 1; c >= 0; --c) {
    double sum = y[c];
    for (int k = c + 1; k < cols; ++k) sum -= m[c * cols + k] * x[k];
    x[c] = sum / m[c * cols + c];
  }
  return x;
}

// splitmix64: a fixed, portable generator, so every rank (and every run) draws the same H.
double uniform(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0;  // [-1, 1)
}

}  // namespace

const std::vector<std::string>& gradient_code_schemes() {
  static const std::vector<std::string> names = {"fractional", "cyclic"};
  return names;
}

std::vector<int> valid_stragglers(const std::string& scheme, int n) {
  std::vector<int> valid;
  for (int s = 0; s < n; ++s) {
    if (scheme == "cyclic" || n % (s + 1) == 0) valid.push_back(s);
  }
  return valid;
}

GradientCode::GradientCode(const std::string& scheme, int n, int s)
    : scheme_(scheme), n_(n), s_(s), b_(static_cast<std::size_t>(n) * n, 0.0) {
  if (scheme != "fractional" && scheme != "cyclic") {
    throw ConfigError(str_cat("coding.scheme: unknown scheme '", scheme,
                              "' (valid: ", join(gradient_code_schemes()), ")"));
  }
  BRAID_CHECK(n >= 1, "gradient code with ", n, " workers");
  const std::vector<int> valid = valid_stragglers(scheme, n);
  bool ok = false;
  std::string list;
  for (int v : valid) {
    ok = ok || v == s;
    list += (list.empty() ? "" : ", ") + std::to_string(v);
  }
  if (!ok) {
    throw ConfigError(
        str_cat("coding.stragglers = ", s, " is not valid for the ", scheme, " scheme with ", n,
                " ranks", scheme == "fractional" ? " (s + 1 must divide the rank count)" : "",
                "; valid: ", list, scheme == "fractional" ? " (cyclic accepts any s < n)" : ""));
  }
  if (scheme == "fractional") {
    build_fractional();
  } else {
    build_cyclic();
  }
}

// B = I_{n/(s+1)} kron 1_{(s+1)x(s+1)}: group k (workers k(s+1)..) holds partitions k(s+1)..
void GradientCode::build_fractional() {
  const int g = s_ + 1;
  for (int i = 0; i < n_; ++i) {
    for (int j = (i / g) * g; j < (i / g + 1) * g; ++j) b_[i * n_ + j] = 1.0;
  }
}

// Every row lies in null(H) for a random s x n H with H 1 = 0: B_ii = 1 and the other s
// coefficients of row i solve H[:, i+1..i+s] x = -H[:, i].
void GradientCode::build_cyclic() {
  std::uint64_t state = 0x6272616964ull;  // "braid": fixed, so every rank builds the same B
  std::vector<double> h(static_cast<std::size_t>(s_) * n_);
  for (int r = 0; r < s_; ++r) {
    double mean = 0;
    for (int j = 0; j < n_; ++j) mean += (h[r * n_ + j] = uniform(state)) / n_;
    for (int j = 0; j < n_; ++j) h[r * n_ + j] -= mean;
  }
  for (int i = 0; i < n_; ++i) {
    b_[i * n_ + i] = 1.0;
    if (s_ == 0) continue;
    std::vector<double> m(static_cast<std::size_t>(s_) * s_), y(s_);
    for (int r = 0; r < s_; ++r) {
      y[r] = -h[r * n_ + i];
      for (int k = 0; k < s_; ++k) m[r * s_ + k] = h[r * n_ + (i + 1 + k) % n_];
    }
    const std::vector<double> x = solve_consistent(m, y, s_, s_);
    for (int k = 0; k < s_; ++k) b_[i * n_ + (i + 1 + k) % n_] = x[k];
  }
}

std::vector<int> GradientCode::partitions(int worker) const {
  std::vector<int> parts;
  for (int j = 0; j < n_; ++j) {
    if (b(worker, j) != 0) parts.push_back(j);
  }
  return parts;
}

std::vector<double> GradientCode::weights(int worker) const {
  std::vector<double> w;
  for (int j : partitions(worker)) w.push_back(b(worker, j));
  return w;
}

std::vector<double> GradientCode::decode(const std::vector<int>& survivors) const {
  const int k = n_ - s_;
  BRAID_CHECK(static_cast<int>(survivors.size()) >= k, "decode needs ", k, " survivors, got ",
              survivors.size());
  for (std::size_t i = 0; i < survivors.size(); ++i) {
    BRAID_CHECK(
        survivors[i] >= 0 && survivors[i] < n_ && (i == 0 || survivors[i - 1] < survivors[i]),
        "decode: survivors must be distinct ranks below ", n_, ", ascending");
  }
  std::vector<double> a(n_, 0.0);
  if (scheme_ == "fractional") {
    // One survivor per group: a group has s + 1 members, at most s are missing.
    std::vector<bool> covered(n_ / (s_ + 1), false);
    for (int i = 0; i < k; ++i) {
      const int group = survivors[i] / (s_ + 1);
      if (!covered[group]) a[survivors[i]] = 1.0;
      covered[group] = true;
    }
    return a;
  }
  // a_I^T B_I = 1^T, i.e. B_I^T a_I = 1: n equations, n - s unknowns, consistent.
  std::vector<double> m(static_cast<std::size_t>(n_) * k);
  for (int j = 0; j < n_; ++j) {
    for (int c = 0; c < k; ++c) m[j * k + c] = b(survivors[c], j);
  }
  const std::vector<double> x = solve_consistent(m, std::vector<double>(n_, 1.0), n_, k);
  if (x.empty()) {
    std::vector<std::string> used;
    for (int c = 0; c < k; ++c) used.push_back(std::to_string(survivors[c]));
    throw DecodeError(str_cat("gradient coding: the coded gradients of ranks ", join(used),
                              " do not determine the sum (the ", scheme_, " code for ", n_,
                              " ranks and ", s_,
                              " stragglers is singular for them); use "
                              "coding.scheme: fractional, or fewer coding.stragglers"));
  }
  for (int c = 0; c < k; ++c) a[survivors[c]] = x[c];
  return a;
}

}  // namespace braid
