// Tier 1: threads as ranks. The exchange paths of the compression layer
// (compression/bucket_exchange.h): which path a configuration gets, the two-phase compressed
// allreduce's identities (lossless with a lossless compressor, the same mean on every rank,
// nothing lost with error feedback at worker and server), and its bytes against the gather path.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <mutex>

#include "common/error.h"
#include "compression/bucket_exchange.h"
#include "compression/error_feedback.h"
#include "compression/two_phase_exchange.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

using testing::spawn_ranks;

CompressionOptions options_of(const std::string& name, const std::string& path = "auto",
                              double ratio = 0.01) {
  CompressionOptions o;
  o.name = name;
  o.exchange = path;
  o.ratio = ratio;
  return o;
}

std::string path_of(const CompressionOptions& o, ErrorFeedbackKind kind, int ranks) {
  return make_bucket_exchange(o, kind, ranks)->path();
}

TEST(BucketExchange, PathFollowsCompressorFeedbackAndRankCount) {
  using K = ErrorFeedbackKind;
  EXPECT_EQ(path_of(options_of("fp16"), K::kEf, 8), "allreduce");
  // auto: two_phase once P b >= 64 (sign: b = 1 + 1/16, so from 61 ranks; top-k 1%: from 134).
  EXPECT_EQ(path_of(options_of("sign"), K::kEf, 60), "gather");
  EXPECT_EQ(path_of(options_of("sign"), K::kEf, 61), "two_phase");
  EXPECT_EQ(path_of(options_of("topk"), K::kNone, 133), "gather");
  EXPECT_EQ(path_of(options_of("topk"), K::kNone, 134), "two_phase");
  EXPECT_EQ(path_of(options_of("topk"), K::kEf21, 1000), "gather");
  EXPECT_EQ(path_of(options_of("topk"), K::kEControl, 1000), "gather");
  EXPECT_EQ(path_of(options_of("sign", "gather"), K::kEf, 8), "gather");
  EXPECT_EQ(path_of(options_of("sign", "two_phase"), K::kEf, 2), "two_phase");
  EXPECT_THROW(make_bucket_exchange(options_of("topk", "two_phase"), K::kEf21, 4), ConfigError);
  try {
    make_bucket_exchange(options_of("topk", "scatter"), K::kNone, 4);
    FAIL() << "an unknown path was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("valid: auto, gather, two_phase"), std::string::npos)
        << e.what();
  }
}

TEST(TwoPhaseExchange, ChunksCoverTheBucketOnce) {
  for (std::int64_t n : {0, 1, 5, 7, 1000}) {
    for (int P : {1, 2, 3, 4}) {
      std::int64_t next = 0;
      for (int c = 0; c < P; ++c) {
        auto [offset, count] = TwoPhaseExchange::chunk(n, P, c);
        EXPECT_EQ(offset, next);
        EXPECT_GE(count, n / P);
        EXPECT_LE(count, n / P + 1);
        next = offset + count;
      }
      EXPECT_EQ(next, n);
    }
  }
}

at::Tensor input_of(int rank, std::int64_t step, std::int64_t n) {
  at::Tensor x = at::empty({n}, at::kDouble);
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = std::sin(0.37 * static_cast<double>(i + 1) * (rank + 1) + 0.11 * step) * (1 + i % 3);
  }
  return x;
}

// Runs `fn(ctx)` as one collective on every rank's communication thread.
void on_comm_thread(Communicator& comm, const std::function<void(OpContext&)>& fn) {
  comm.submit(OpDesc{"test_exchange", "two_phase", 0, DType::kFloat64}, fn).wait();
}

// top-k at ratio 1 loses nothing, so two phases give the mean summed in rank order, bitwise.
TEST(TwoPhaseExchange, LosslessCompressorGivesTheMeanInRankOrderOnEveryRank) {
  for (int P : {1, 2, 3, 4}) {
    for (std::int64_t n : {0, 2, 7, 1000}) {
      at::Tensor want = at::zeros({n}, at::kDouble);
      for (int r = 0; r < P; ++r) want += input_of(r, 0, n);
      want /= P;
      spawn_ranks(P, [&](Communicator& comm) {
        auto path =
            make_bucket_exchange(options_of("topk", "two_phase", 1.0), ErrorFeedbackKind::kNone, P);
        at::Tensor mean = at::empty({n}, at::kDouble), delta = at::empty({n}, at::kDouble);
        at::Tensor x = input_of(comm.rank(), 0, n);
        on_comm_thread(comm, [&](OpContext& ctx) {
          path->run(ctx, x, PayloadContext{3, 0, comm.rank()}, mean, &delta);
        });
        EXPECT_TRUE(at::equal(mean, want)) << "P=" << P << " n=" << n;
        EXPECT_TRUE(at::equal(delta, x)) << "P=" << P << " n=" << n;
      });
    }
  }
}

struct Conservation {
  double residual = 0;   // max |sum_t mean_t + (1/P) sum_r e_r + e_server - (1/P) sum_r,t u|
  double tolerance = 0;  // from rounding
  bool same_everywhere = true;
};

// T steps of sign compression through the two-phase exchange with worker error feedback, with
// or without the server's. Nothing is lost with both: per coordinate,
//   sum_t mean_t + (1/P) sum_r e_worker_r,T + e_server_T = (1/P) sum_r sum_t u_r,t.
Conservation run_sign_two_phase(int P, bool server_feedback, int T, std::int64_t n) {
  std::mutex mutex;
  at::Tensor total_in = at::zeros({n}, at::kDouble), total_out = at::zeros({n}, at::kDouble);
  at::Tensor errors = at::zeros({n}, at::kDouble);
  std::vector<at::Tensor> means(P);
  Conservation result;
  double magnitude = 0;
  spawn_ranks(P, [&](Communicator& comm) {
    const int r = comm.rank();
    TwoPhaseExchange path(make_compressor(options_of("sign")), server_feedback);
    ErrorFeedback feedback(ErrorFeedbackKind::kEf);
    at::Tensor in_sum = at::zeros({n}, at::kDouble), out_sum = at::zeros({n}, at::kDouble);
    for (int t = 0; t < T; ++t) {
      at::Tensor u = input_of(r, t, n), mean = at::empty({n}, at::kDouble);
      at::Tensor delta = at::empty({n}, at::kDouble);
      at::Tensor input = feedback.prepare(0, u);
      on_comm_thread(comm, [&](OpContext& ctx) {
        path.run(ctx, input, PayloadContext{0, t, r}, mean, &delta);
      });
      feedback.commit(0, u, input, delta);
      in_sum += u;
      out_sum += mean;
    }
    std::lock_guard<std::mutex> lock(mutex);
    total_in += in_sum / P;
    errors += feedback.state()[0].second / P;  // "0.error"
    means[r] = out_sum;
    if (server_feedback) {
      auto [offset, count] = TwoPhaseExchange::chunk(n, P, r);
      errors.narrow(0, offset, count) += path.state()[0].second;  // "0.server_error"
    }
    magnitude = std::max(magnitude, in_sum.abs().max().item<double>());
  });
  for (int r = 0; r < P; ++r) result.same_everywhere &= at::equal(means[r], means[0]);
  at::Tensor gap = means[0] + errors - total_in;
  result.residual = gap.abs().max().item<double>();
  // Each of ~T (P + 4) additions per coordinate rounds by at most 2^-53 of a partial sum, and
  // every partial sum is below a few times the largest input sum (the errors stay bounded).
  result.tolerance = 8.0 * T * (P + 4) * 0x1.0p-53 * std::max(1.0, magnitude);
  return result;
}

TEST(TwoPhaseExchange, ErrorFeedbackAtWorkerAndServerLosesNothing) {
  for (int P : {1, 3, 4}) {
    Conservation c = run_sign_two_phase(P, /*server_feedback=*/true, 20, 1031);
    EXPECT_TRUE(c.same_everywhere) << "P=" << P;
    EXPECT_LE(c.residual, c.tolerance) << "P=" << P;
  }
}

// Negative control: without the server's residual the owner's second compression loses mass.
TEST(TwoPhaseExchange, WithoutServerFeedbackTheIdentityFails) {
  Conservation c = run_sign_two_phase(3, /*server_feedback=*/false, 20, 1031);
  EXPECT_TRUE(c.same_everywhere);
  EXPECT_GT(c.residual, 1e3 * c.tolerance);
}

std::uint64_t bytes_sent_by_rank0(const std::string& path, int P, std::int64_t n) {
  std::uint64_t sent = 0;
  spawn_ranks(P, [&](Communicator& comm) {
    auto exchange = make_bucket_exchange(options_of("sign", path), ErrorFeedbackKind::kEf, P);
    at::Tensor x = input_of(comm.rank(), 0, n).to(at::kFloat), mean = at::empty_like(x);
    const std::uint64_t before = comm.bytes_sent();
    on_comm_thread(comm, [&](OpContext& ctx) {
      exchange->run(ctx, x, PayloadContext{0, 0, comm.rank()}, mean, nullptr);
    });
    if (comm.rank() == 0) sent = comm.bytes_sent() - before;
  });
  return sent;
}

// fp16 sums P values on the wire: scaled by 1/P first, a mean of 20000 from 4 ranks stays 20000
// rather than overflowing at 65504 (each partial sum of unscaled values would reach 80000). Each
// rank's delta stays in the input's units (what error feedback subtracts from the input).
TEST(AllreduceExchange, SixteenBitSumsDoNotOverflowBelowTheMaximum) {
  for (const char* name : {"fp16", "bf16"}) {
    const double tolerance = std::string(name) == "fp16" ? 0 : 20000.0 / 128;  // bf16: 8 bits
    spawn_ranks(4, [&](Communicator& comm) {
      auto path = make_bucket_exchange(options_of(name), ErrorFeedbackKind::kEf, 4);
      ASSERT_STREQ(path->path(), "allreduce");
      at::Tensor x = at::full({1000}, 20000.0, at::kFloat);
      at::Tensor mean = at::empty_like(x), delta = at::empty_like(x);
      on_comm_thread(comm, [&](OpContext& ctx) {
        path->run(ctx, x, PayloadContext{0, 0, comm.rank()}, mean, &delta);
      });
      EXPECT_TRUE(at::isfinite(mean).all().item<bool>()) << name << ": " << mean[0].item<float>();
      EXPECT_LE((mean - 20000).abs().max().item<double>(), tolerance) << name;
      EXPECT_LE((delta - 20000).abs().max().item<double>(), tolerance) << name;
      EXPECT_TRUE(at::equal(mean, delta)) << name << ": every rank sent the same";
    });
  }
}

// 2(P-1)/P payloads' worth against P-1: at P = 4, about 2/3 fewer bytes.
TEST(TwoPhaseExchange, SendsFewerBytesThanTheGatherFromThreeRanks) {
  const std::int64_t n = 1 << 16;
  const std::uint64_t gather = bytes_sent_by_rank0("gather", 4, n);
  const std::uint64_t two_phase = bytes_sent_by_rank0("two_phase", 4, n);
  const double payload = n / 8.0 + n / 512.0 * 4;  // sign bits and per-chunk scales
  EXPECT_GE(gather, 3 * payload);
  EXPECT_LE(two_phase, 1.6 * payload);
}

}  // namespace
}  // namespace braid
