#include "compression/powersgd_exchange.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "collectives/tensor.h"
#include "common/error.h"
#include "compression/seeded_rng.h"

namespace braid {
namespace {

constexpr std::uint64_t kPowerSgdSalt = 0x5053474400000000ULL;  // "PSGD"

// The runs {offset, count} of [0, numel) that no compressed matrix covers.
std::vector<std::pair<std::int64_t, std::int64_t>> dense_runs(
    const std::vector<PowerSgdExchange::Matrix>& matrices, std::int64_t numel) {
  std::vector<std::pair<std::int64_t, std::int64_t>> runs;
  std::int64_t next = 0;
  for (const auto& m : matrices) {
    BRAID_CHECK(m.offset + m.rows * m.cols <= numel, "powersgd: segment ", m.segment, " ends at ",
                m.offset + m.rows * m.cols, ", past the bucket's ", numel, " elements");
    if (m.offset > next) runs.emplace_back(next, m.offset - next);
    next = m.offset + m.rows * m.cols;
  }
  if (numel > next) runs.emplace_back(next, numel - next);
  return runs;
}

template <typename T>
T norm(const T* v, std::int64_t n) {
  T sum = 0;
  for (std::int64_t k = 0; k < n; ++k) sum += v[k] * v[k];
  return std::sqrt(sum);
}

// Modified Gram-Schmidt on the rows of a count x length matrix, in T. Returns which rows were
// zeroed: those that lost all but sqrt(epsilon) of their norm to the projections (dependent on
// earlier rows within rounding, or zero to begin with). NaN propagates rather than being zeroed.
template <typename T>
std::vector<bool> orthonormalize_rows(T* rows, std::int64_t count, std::int64_t length) {
  const T tau = std::sqrt(std::numeric_limits<T>::epsilon());
  std::vector<bool> zeroed(count, false);
  for (std::int64_t i = 0; i < count; ++i) {
    T* v = rows + i * length;
    const T before = norm(v, length);
    for (std::int64_t j = 0; j < i; ++j) {
      const T* u = rows + j * length;
      T dot = 0;
      for (std::int64_t k = 0; k < length; ++k) dot += u[k] * v[k];
      for (std::int64_t k = 0; k < length; ++k) v[k] -= dot * u[k];
    }
    const T after = norm(v, length);
    zeroed[i] = after <= tau * before;
    const T scale = zeroed[i] ? T(0) : T(1) / after;
    for (std::int64_t k = 0; k < length; ++k) v[k] *= scale;
  }
  return zeroed;
}

// P^ (rows x r) from the summed P, and which of its columns are zero.
std::pair<at::Tensor, std::vector<bool>> orthonormalized(const at::Tensor& p) {
  // r x rows, each column contiguous, on the host: Gram-Schmidt walks it through raw pointers
  // (r is small; a CUDA bucket's P is copied over and back).
  at::Tensor columns = p.t().to(at::kCPU).contiguous();
  const char* what = "PowerSGD's P";
  std::vector<bool> zeroed =
      columns.scalar_type() == at::kDouble
          ? orthonormalize_rows(host_data<double>(columns, what), columns.size(0), columns.size(1))
          : orthonormalize_rows(host_data<float>(columns, what), columns.size(0), columns.size(1));
  return {columns.t().to(p.device()), zeroed};
}

// A rows x cols view of `count = rows * cols` elements of flat contiguous `t` at `offset`.
at::Tensor matrix_view(const at::Tensor& t, std::int64_t offset, std::int64_t rows,
                       std::int64_t cols) {
  return t.narrow(0, offset, rows * cols).view({rows, cols});
}

}  // namespace

PowerSgdExchange::PowerSgdExchange(const CompressionOptions& options, double min_compression_rate)
    : rank_(options.rank),
      min_rate_(min_compression_rate),
      seed_(options.seed),
      ring_(make_allreduce("ring")) {
  BRAID_CHECK(rank_ >= 1, "powersgd: rank ", rank_);
}

std::vector<PowerSgdExchange::Matrix> PowerSgdExchange::compressed_matrices(
    const BucketLayout& layout, int rank, double min_compression_rate) {
  std::vector<Matrix> out;
  for (int s = 0; s < static_cast<int>(layout.size()); ++s) {
    const TensorSegment& segment = layout[s];
    if (segment.shape.size() < 2) continue;
    std::int64_t cols = 1;
    for (std::size_t d = 1; d < segment.shape.size(); ++d) cols *= segment.shape[d];
    const std::int64_t rows = segment.shape[0];
    const std::int64_t r = std::min<std::int64_t>({rank, rows, cols});
    // Minimum compression rate (2 by default): r(m + n) values at most half of mn.
    const auto sent = static_cast<double>(r * (rows + cols));
    if (r < 1 || min_compression_rate * sent > static_cast<double>(rows * cols)) continue;
    BRAID_CHECK(segment.offset >= 0, "powersgd: segment ", s, " at offset ", segment.offset);
    out.push_back(Matrix{s, segment.offset, rows, cols, r});
  }
  std::sort(out.begin(), out.end(),
            [](const Matrix& a, const Matrix& b) { return a.offset < b.offset; });
  for (std::size_t i = 1; i < out.size(); ++i) {
    BRAID_CHECK(out[i - 1].offset + out[i - 1].rows * out[i - 1].cols <= out[i].offset,
                "powersgd: segments ", out[i - 1].segment, " and ", out[i].segment, " overlap");
  }
  return out;
}

void PowerSgdExchange::set_layout(int bucket, BucketLayout layout) {
  matrices_[bucket] = compressed_matrices(layout, rank_, min_rate_);
}

at::Tensor PowerSgdExchange::initial_query(int bucket, const Matrix& matrix) const {
  SeededRng rng({kPowerSgdSalt, seed_, static_cast<std::uint64_t>(bucket),
                 static_cast<std::uint64_t>(matrix.segment)});
  at::Tensor q = at::empty({matrix.cols, matrix.rank}, at::kDouble);
  double* values = host_data<double>(q, "PowerSGD's initial Q");
  for (std::int64_t k = 0; k < q.numel(); ++k) {
    double sum = 0;
    for (int u = 0; u < 12; ++u) sum += rng.uniform();
    values[k] = sum - 6.0;
  }
  return q;
}

at::Tensor& PowerSgdExchange::query(int bucket, const Matrix& matrix, const at::Tensor& like) {
  at::Tensor& q = queries_[{bucket, matrix.segment}];
  if (!q.defined()) q = initial_query(bucket, matrix);
  if (q.scalar_type() != like.scalar_type()) q = q.to(like.scalar_type());
  return q;
}

void PowerSgdExchange::run(OpContext& ctx, const at::Tensor& input, const PayloadContext& context,
                           at::Tensor& mean, at::Tensor* delta) {
  BRAID_CHECK(input.dim() == 1 && input.is_contiguous() && mean.numel() == input.numel(),
              "powersgd: input of shape ", input.sizes(), ", mean of ", mean.numel(), " elements");
  const int P = ctx.size(), bucket = context.bucket;
  static const std::vector<Matrix> kNone;
  auto found = matrices_.find(bucket);
  const std::vector<Matrix>& matrices = found == matrices_.end() ? kNone : found->second;
  const auto runs = dense_runs(matrices, input.numel());

  // Round 1: [P_1 | ... | P_k | dense], summed.
  std::int64_t p_count = 0, q_count = 0, dense_count = 0;
  for (const Matrix& m : matrices) p_count += m.rows * m.rank, q_count += m.cols * m.rank;
  for (const auto& run : runs) dense_count += run.second;
  at::Tensor packed = at::empty({p_count + dense_count}, input.options());
  std::int64_t pos = 0;
  for (const Matrix& m : matrices) {
    at::Tensor p = matrix_view(packed, pos, m.rows, m.rank);
    at::mm_out(p, matrix_view(input, m.offset, m.rows, m.cols), query(bucket, m, input));
    pos += m.rows * m.rank;
  }
  for (const auto& [offset, count] : runs) {
    packed.narrow(0, pos, count).copy_(input.narrow(0, offset, count));
    pos += count;
  }
  if (packed.numel() > 0) ring_->run(ctx, as_buffer(packed), ReduceOp::kSum);
  pos = p_count;
  for (const auto& [offset, count] : runs) {
    mean.narrow(0, offset, count).copy_(packed.narrow(0, pos, count)).div_(P);
    if (delta) delta->narrow(0, offset, count).copy_(input.narrow(0, offset, count));
    pos += count;
  }
  if (matrices.empty()) return;

  // Round 2: [Q_1 | ... | Q_k], Q_j = M_j^T P^_j, summed and divided by P.
  std::vector<std::pair<at::Tensor, std::vector<bool>>> bases;
  at::Tensor queries = at::empty({q_count}, input.options());
  pos = 0;
  std::int64_t q_at = 0;
  for (const Matrix& m : matrices) {
    bases.push_back(orthonormalized(matrix_view(packed, pos, m.rows, m.rank)));
    at::Tensor q = matrix_view(queries, q_at, m.cols, m.rank);
    at::mm_out(q, matrix_view(input, m.offset, m.rows, m.cols).t(), bases.back().first);
    pos += m.rows * m.rank, q_at += m.cols * m.rank;
  }
  const at::Tensor local = delta ? queries.clone() : at::Tensor();
  ring_->run(ctx, as_buffer(queries), ReduceOp::kSum);
  queries.div_(P);

  q_at = 0;
  for (std::size_t j = 0; j < matrices.size(); ++j) {
    const Matrix& m = matrices[j];
    const auto& [basis, zeroed] = bases[j];
    at::Tensor q = matrix_view(queries, q_at, m.cols, m.rank);
    at::Tensor out = matrix_view(mean, m.offset, m.rows, m.cols);
    at::mm_out(out, basis, q.t());
    if (delta) {
      at::Tensor own = matrix_view(*delta, m.offset, m.rows, m.cols);
      at::mm_out(own, basis, matrix_view(local, q_at, m.cols, m.rank).t());
    }
    // Warm start; a zeroed column would stay zero forever, so it restarts from the initial Q.
    at::Tensor kept = q.clone();
    for (std::int64_t c = 0; c < m.rank; ++c) {
      if (zeroed[c]) kept.select(1, c).copy_(initial_query(bucket, m).select(1, c));
    }
    queries_[{bucket, m.segment}] = kept;
    q_at += m.cols * m.rank;
  }
}

BucketExchange::NamedTensors PowerSgdExchange::state() const {
  NamedTensors out;
  for (const auto& [key, q] : queries_) out.emplace_back(str_cat(key.first, ".q", key.second), q);
  return out;
}

void PowerSgdExchange::load_state(const NamedTensors& state) {
  std::map<std::pair<int, int>, at::Tensor> loaded;
  for (const auto& [name, tensor] : state) {
    char* end = nullptr;
    const long bucket = std::strtol(name.c_str(), &end, 10);
    const bool prefix = end != name.c_str() && bucket >= 0 && std::strncmp(end, ".q", 2) == 0;
    const char* digits = prefix ? end + 2 : end;
    const long segment = prefix ? std::strtol(digits, &end, 10) : -1;
    const Matrix* matrix = nullptr;
    auto found = matrices_.find(static_cast<int>(bucket));
    if (prefix && end != digits && *end == '\0' && found != matrices_.end()) {
      for (const Matrix& m : found->second) {
        if (m.segment == segment) matrix = &m;
      }
    }
    if (!matrix) {
      throw CheckpointError(str_cat("powersgd exchange state: unknown entry '", name,
                                    "' (no compressed matrix of that bucket and segment)"));
    }
    if (tensor.dim() != 2 || tensor.size(0) != matrix->cols || tensor.size(1) != matrix->rank ||
        !(tensor.scalar_type() == at::kFloat || tensor.scalar_type() == at::kDouble)) {
      throw CheckpointError(str_cat("powersgd exchange state: '", name, "' is ", tensor.sizes(),
                                    " ", tensor.scalar_type(), ", expected a float [", matrix->cols,
                                    ", ", matrix->rank, "]"));
    }
    loaded[{static_cast<int>(bucket), matrix->segment}] = tensor.clone().contiguous();
  }
  queries_ = std::move(loaded);
}

}  // namespace braid
