// Deep Gradient Compression (Lin et al., ICLR 2018; compression/dgc_memory.h), per rank and bucket:
//   g = clip(g, c / sqrt(N));  u = m u + g;  v += u;  send v[top-k];  v[sent] = 0;  u[sent] = 0
// checked here on one rank in float64 (the trajectories over ranks are in mpi_training_test.cpp):
//  - the warm-up schedule is ratio^((e+1)/(W+1)), the paper's 0.25, 0.0625, 0.0156, 0.0039,
//    0.001 for ratio 0.001 and 4 warm-up epochs, as a pure function of the step;
//  - momentum factor masking zeroes u exactly on the coordinates the payload carries, and
//    nowhere else (masking off: u is untouched), v likewise;
//  - conservation per coordinate: sum_t sent_t + v_T == sum_t u_t (u_t post-update, pre-mask)
//    within float64 rounding of T additions; a control that drops one step's payload fails it;
//  - local clipping scales the bucket to clip_norm / sqrt(ranks); Nesterov's update rule;
//  - the state restores bit for bit: a restored memory continues exactly as the original;
//  - dgc with adamw, with error feedback, with two_phase or a negative warm-up is a ConfigError
//    naming the key.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "compression/bucket_exchange.h"
#include "compression/bucket_memory.h"
#include "compression/compressor_dgc.h"
#include "compression/dgc_memory.h"
#include "compression/momentum_correction.h"
#include "compression/payload.h"
#include "compression/sparse_select.h"
#include "runtime/config.h"
#include "runtime/config_options.h"

namespace braid {
namespace {

constexpr double kEps = 2.220446049250313e-16;  // float64 unit roundoff * 2

at::Tensor gradient_at(int step, std::int64_t n) {
  at::manual_seed(1000 + step);
  return at::randn({n}, at::kDouble);
}

at::Tensor named(const BucketMemory& memory, const std::string& name) {
  for (const auto& [key, tensor] : memory.state()) {
    if (key == name) return tensor.clone();
  }
  ADD_FAILURE() << "no state entry " << name;
  return {};
}

// One DGC step on bucket 0 as CompressedExchange runs it on one rank: returns the payload.
std::vector<std::uint8_t> dgc_step(DgcMemory& memory, Compressor& compressor, const at::Tensor& g,
                                   int step, at::Tensor* delta_out = nullptr) {
  at::Tensor input = memory.prepare(0, g);
  PayloadContext context{0, step, 0};
  std::vector<std::uint8_t> payload = compressor.encode(input, context);
  at::Tensor delta = at::empty_like(g);
  compressor.decode(payload.data(), payload.size(), delta, context);
  memory.commit(0, g, input, delta);
  if (delta_out) *delta_out = delta;
  return payload;
}

DgcOptions options_with(double momentum, bool masking) {
  DgcOptions o;
  o.momentum = momentum;
  o.momentum_masking = masking;
  return o;
}

TEST(DgcWarmup, FollowsThePapersSequenceThenTheTargetRatio) {
  DgcOptions o;
  o.warmup_epochs = 4;
  o.steps_per_epoch = 10;
  // The paper's keep ratios (75%, 93.75%, 98.4375%, 99.6% sparsity), then the target.
  const std::vector<double> paper = {0.25, 0.0625, 0.015625, 0.0039, 0.001};
  for (int epoch = 0; epoch < 5; ++epoch) {
    for (int step : {epoch * 10, epoch * 10 + 9}) {
      const double r = dgc_kept_ratio(0.001, o, step);
      const double exact = epoch < 4 ? std::pow(0.001, (epoch + 1) / 5.0) : 0.001;
      EXPECT_NEAR(r, exact, 4 * kEps * exact) << "step " << step;
      // ratio^(1/5) = 0.2512 against the paper's 0.25: 0.5% per epoch, 2% by epoch 3.
      EXPECT_NEAR(r / paper[epoch], 1.0, 0.025) << "epoch " << epoch;
    }
  }
  EXPECT_EQ(dgc_kept_ratio(0.001, o, 1000000), 0.001);
  o.warmup_epochs = 0;
  EXPECT_EQ(dgc_kept_ratio(0.001, o, 0), 0.001);
}

TEST(DgcWarmup, NeedsTheEpochLengthAndANonNegativeCount) {
  DgcOptions o;
  o.warmup_epochs = 2;
  EXPECT_THROW(CompressorDgc(0.01, o, 0), ConfigError);  // steps_per_epoch unknown
  o.warmup_epochs = -1;
  o.steps_per_epoch = 5;
  try {
    CompressorDgc(0.01, o, 0);
    ADD_FAILURE() << "a negative warm-up was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("compression.warmup_epochs"), std::string::npos);
  }
}

TEST(DgcWarmup, TheCompressorKeepsTheScheduledCount) {
  DgcOptions o;
  o.warmup_epochs = 1;
  o.steps_per_epoch = 3;
  CompressorDgc compressor(0.01, o, 7);
  const std::int64_t n = 10000;
  for (int step : {0, 2, 3}) {
    std::vector<std::uint8_t> payload = compressor.encode(gradient_at(step, n), {0, step, 0});
    SparsePayload sparse =
        decode_sparse(payload.data(), payload.size(), PayloadKind::kTopK, DType::kFloat64, n, {});
    const double ratio = step < 3 ? 0.1 : 0.01;  // 0.01^(1/2), then 0.01
    EXPECT_EQ(static_cast<std::int64_t>(sparse.indices.size()), Compressor::kept_elements(ratio, n))
        << "step " << step;
  }
}

// Masking on or off: u and v are zeroed exactly on the payload's indices; elsewhere v and (with
// masking) u keep their pre-commit values bit for bit.
void check_masking(bool masking) {
  DgcMemory memory(options_with(0.9, masking), 0.05, 1, 0);
  CompressorTopK compressor(0.05, 3);
  const std::int64_t n = 2000;
  for (int step = 0; step < 6; ++step) {
    at::Tensor g = gradient_at(step, n);
    at::Tensor input = memory.prepare(0, g);
    at::Tensor u_before = named(memory, "0.momentum"), v_before = input.clone();
    PayloadContext context{0, step, 0};
    std::vector<std::uint8_t> payload = compressor.encode(input, context);
    at::Tensor delta = at::empty_like(g);
    compressor.decode(payload.data(), payload.size(), delta, context);
    memory.commit(0, g, input, delta);
    SparsePayload sparse =
        decode_sparse(payload.data(), payload.size(), PayloadKind::kTopK, DType::kFloat64, n, {});
    at::Tensor sent = at::zeros({n}, at::kBool);
    for (std::int64_t i : sparse.indices) sent[i] = true;
    ASSERT_EQ(static_cast<std::int64_t>(sparse.indices.size()), Compressor::kept_elements(0.05, n));
    const at::Tensor u = named(memory, "0.momentum"), v = named(memory, "0.velocity");
    EXPECT_TRUE(at::equal(v, v_before.masked_fill(sent, 0))) << "step " << step;
    EXPECT_TRUE(at::equal(u, masking ? u_before.masked_fill(sent, 0) : u_before))
        << "step " << step;
    // Random float64 data: every sent coordinate was non-zero before, so the mask is visible.
    EXPECT_EQ(u_before.index({sent}).ne(0).sum().item<std::int64_t>(),
              static_cast<std::int64_t>(sparse.indices.size()));
  }
}

TEST(DgcMemory, MomentumMaskingZeroesExactlyTheSentCoordinates) { check_masking(true); }
TEST(DgcMemory, WithoutMaskingOnlyTheVelocityIsCleared) { check_masking(false); }

// ---- Per tensor (the paper selects per layer; the authors' code sends 1-D tensors dense) ------
// A bucket packing a 10x10 matrix of small values, an 8-element bias and a 20x50 matrix of large
// ones, with a 4-element alignment gap before the last.
BucketLayout three_tensors() {
  return {TensorSegment{0, {10, 10}}, TensorSegment{100, {8}}, TensorSegment{112, {20, 50}}};
}

at::Tensor three_tensor_values() {
  at::manual_seed(5);
  at::Tensor v = at::zeros({1112}, at::kDouble);
  v.narrow(0, 0, 100).copy_(at::randn({100}, at::kDouble).mul_(1e-3));
  v.narrow(0, 100, 8).copy_(at::randn({8}, at::kDouble).mul_(1e-3));
  v.narrow(0, 112, 1000).copy_(at::randn({1000}, at::kDouble).add_(10));
  return v;
}

// The indices a payload carries, as a set per range [begin, end).
std::vector<std::int64_t> sent_in(const std::vector<std::int64_t>& indices, std::int64_t begin,
                                  std::int64_t end) {
  std::vector<std::int64_t> out;
  for (std::int64_t i : indices) {
    if (i >= begin && i < end) out.push_back(i - begin);
  }
  return out;
}

std::vector<std::int64_t> top_k_of(const at::Tensor& values, std::int64_t k) {
  const at::Tensor idx = std::get<0>(std::get<1>(values.abs().topk(k)).sort());
  return std::vector<std::int64_t>(idx.data_ptr<std::int64_t>(), idx.data_ptr<std::int64_t>() + k);
}

TEST(DgcPerTensor, EachMatrixKeepsItsOwnTopKAndVectorsGoWhole) {
  const at::Tensor v = three_tensor_values();
  for (bool with_layout : {true, false}) {
    CompressorDgc compressor(0.1, DgcOptions{}, 3);
    if (with_layout) compressor.set_layout(0, three_tensors());
    const std::vector<std::uint8_t> payload = compressor.encode(v, {0, 0, 0});
    const std::vector<std::int64_t> indices =
        decode_sparse(payload.data(), payload.size(), PayloadKind::kTopK, DType::kFloat64,
                      v.numel(), {})
            .indices;
    if (!with_layout) {
      // Control: one top-k over the bucket gives everything to the large matrix.
      EXPECT_TRUE(sent_in(indices, 0, 112).empty());
      continue;
    }
    EXPECT_EQ(sent_in(indices, 0, 100), top_k_of(v.narrow(0, 0, 100), 10));
    EXPECT_EQ(sent_in(indices, 100, 108), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
    EXPECT_TRUE(sent_in(indices, 108, 112).empty()) << "the gap belongs to no tensor";
    EXPECT_EQ(sent_in(indices, 112, 1112), top_k_of(v.narrow(0, 112, 1000), 100));
  }
}

TEST(DgcPerTensor, SendsWholeWhatHasAtMostOneDimensionOrLessThanOneKeptElement) {
  EXPECT_TRUE(dgc_sends_dense(TensorSegment{0, {}}, 0.001));           // a scalar
  EXPECT_TRUE(dgc_sends_dense(TensorSegment{0, {4096}}, 0.001));       // a bias, however long
  EXPECT_TRUE(dgc_sends_dense(TensorSegment{0, {8, 1, 3, 3}}, 0.01));  // 72 x 0.01 < 1
  EXPECT_FALSE(dgc_sends_dense(TensorSegment{0, {10, 10}}, 0.01));     // 100 x 0.01 = 1
  EXPECT_FALSE(dgc_sends_dense(TensorSegment{0, {16, 8, 3, 3}}, 0.001));
}

// With the layout, masking clears u only where the top-k tensors were sent: a tensor sent whole
// keeps its momentum (masking it would clear u everywhere, every step).
TEST(DgcPerTensor, MaskingSparesTheTensorsSentWhole) {
  CompressionOptions o;
  o.name = "dgc";
  o.ratio = 0.1;
  DgcMemory memory(options_with(0.9, true), o.ratio, 1, 0);
  CompressorDgc compressor(o.ratio, DgcOptions{}, 3);
  memory.set_layout(0, three_tensors());
  compressor.set_layout(0, three_tensors());
  at::Tensor g = three_tensor_values(), delta;
  dgc_step(memory, compressor, g, 0, &delta);
  const at::Tensor u = named(memory, "0.momentum");
  const at::Tensor sent = delta.ne(0);
  EXPECT_TRUE(at::equal(u.narrow(0, 100, 8), g.narrow(0, 100, 8)));  // u = m 0 + g, kept
  EXPECT_TRUE(u.narrow(0, 0, 100).masked_select(sent.narrow(0, 0, 100)).eq(0).all().item<bool>());
  EXPECT_EQ(sent.narrow(0, 0, 100).sum().item<std::int64_t>(), 10);
  // Control: a memory without the layout masks the whole bucket, the bias's u too.
  DgcMemory whole(options_with(0.9, true), o.ratio, 1, 0);
  dgc_step(whole, compressor, g, 0, &delta);
  EXPECT_TRUE(named(whole, "0.momentum").narrow(0, 100, 8).eq(0).all().item<bool>());
}

// sum_t sent_t + v_T == sum_t u_t per coordinate. Each side is a sum of T terms in float64, plus
// v's own T additions and clearings, so the difference is bounded by a few T eps sum_t |u_t|.
TEST(DgcMemory, NothingIsLostOnlyDelayed) {
  for (bool masking : {true, false}) {
    DgcMemory memory(options_with(0.9, masking), 0.05, 1, 0);
    CompressorTopK compressor(0.02, 5);
    const std::int64_t n = 3000;
    const int T = 40;
    at::Tensor sent_sum = at::zeros({n}, at::kDouble), u_sum = at::zeros_like(sent_sum);
    at::Tensor u_abs = at::zeros_like(sent_sum), last_sent;
    for (int step = 0; step < T; ++step) {
      at::Tensor g = gradient_at(step, n);
      at::Tensor input = memory.prepare(0, g);
      at::Tensor u = named(memory, "0.momentum");  // post-update, pre-mask
      u_sum += u;
      u_abs += u.abs();
      PayloadContext context{0, step, 0};
      std::vector<std::uint8_t> payload = compressor.encode(input, context);
      at::Tensor delta = at::empty_like(g);
      compressor.decode(payload.data(), payload.size(), delta, context);
      memory.commit(0, g, input, delta);
      sent_sum += delta;
      last_sent = delta;
    }
    const at::Tensor v = named(memory, "0.velocity");
    const at::Tensor bound = 4 * T * kEps * u_abs + 1e-300;
    EXPECT_TRUE(((sent_sum + v - u_sum).abs() <= bound).all().item<bool>()) << masking;
    // Control: losing the last step's payload breaks the identity far beyond the bound.
    EXPECT_FALSE(((sent_sum - last_sent + v - u_sum).abs() <= bound).all().item<bool>());
  }
}

TEST(DgcMemory, ClipsEachBucketToClipNormOverSqrtRanks) {
  DgcMemory memory(options_with(0.9, true), 0.05, 4, 2.0);  // 2 / sqrt(4) = 1
  EXPECT_TRUE(memory.clips_locally());
  at::Tensor g = gradient_at(0, 500);
  g *= 10 / g.norm().item<double>();
  memory.prepare(0, g);
  const at::Tensor u = named(memory, "0.momentum");
  EXPECT_NEAR(u.norm().item<double>(), 1.0, 1e-6);  // torch's clip: 1 / (norm + 1e-6)
  EXPECT_TRUE(at::allclose(u * 10, g, 1e-6, 0));    // the direction is kept
  // Below the threshold a gradient passes unchanged.
  DgcMemory small(options_with(0.9, true), 0.05, 4, 2.0);
  at::Tensor h = g * 0.05;  // norm 0.5
  small.prepare(0, h);
  EXPECT_TRUE(at::equal(named(small, "0.momentum"), h));
}

TEST(DgcMemory, NesterovAccumulatesMTimesUPlusGAndAddsG) {
  DgcOptions o = options_with(0.5, false);
  o.nesterov = true;
  DgcMemory memory(o, 0.05, 1, 0);
  at::Tensor g = at::full({4}, 2.0, at::kDouble);
  memory.prepare(0, g);  // u = 0.5 (0 + 2) = 1, v = 1 + 2 = 3
  memory.commit(0, g, g, at::zeros_like(g));
  memory.prepare(0, g);  // u = 0.5 (1 + 2) = 1.5, v = 3 + 1.5 + 2 = 6.5
  EXPECT_TRUE(at::equal(named(memory, "0.momentum"), at::full({4}, 1.5, at::kDouble)));
  EXPECT_TRUE(at::equal(named(memory, "0.velocity"), at::full({4}, 6.5, at::kDouble)));
}

TEST(DgcMemory, RestoredStateContinuesBitForBit) {
  DgcMemory a(options_with(0.9, true), 0.05, 2, 1.0), b(options_with(0.9, true), 0.05, 2, 1.0);
  CompressorTopK compressor(0.05, 9);
  const std::int64_t n = 1000;
  for (int step = 0; step < 5; ++step) dgc_step(a, compressor, gradient_at(step, n), step);
  b.load_state(a.state());
  EXPECT_FALSE(b.state_is_replicated());
  for (int step = 5; step < 10; ++step) {
    const auto pa = dgc_step(a, compressor, gradient_at(step, n), step);
    const auto pb = dgc_step(b, compressor, gradient_at(step, n), step);
    EXPECT_EQ(pa, pb) << "step " << step;
  }
  EXPECT_TRUE(at::equal(named(a, "0.velocity"), named(b, "0.velocity")));
  EXPECT_TRUE(at::equal(named(a, "0.momentum"), named(b, "0.momentum")));
  EXPECT_THROW(b.load_state({{"0.error", at::zeros({n}, at::kDouble)}}), CheckpointError);
  EXPECT_THROW(b.load_state({{"0.velocity", at::zeros({n}, at::kDouble)}}), CheckpointError);
}

void expect_config_error(const std::string& yaml, const std::string& key) {
  try {
    parse_config(yaml, {}, "dgc.yaml");
    ADD_FAILURE() << "accepted:\n" << yaml;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
}

TEST(DgcConfig, RefusesWhatItCannotRunNamingTheKey) {
  const std::string dgc = "compression:\n  name: dgc\n";
  EXPECT_NO_THROW(parse_config(dgc + "  warmup_epochs: 2\n  momentum_masking: false\n", {}, "x"));
  expect_config_error(dgc + "optimizer:\n  name: adamw\n", "optimizer.name");
  expect_config_error(dgc + "  error_feedback: ef\n", "compression.error_feedback");
  expect_config_error(dgc + "  warmup_epochs: -1\n", "compression.warmup_epochs");
  expect_config_error(dgc + "  ratio: 0\n", "compression.ratio");
}

TEST(DgcConfig, DefaultsToThePapersRatioAndWarmupKeepingWhatIsGiven) {
  const Config dgc = parse_config("compression:\n  name: dgc\n", {}, "x");
  EXPECT_EQ(dgc.compression.ratio, 0.001);
  EXPECT_EQ(dgc.compression.warmup_epochs, 4);
  const Config given = parse_config("compression:\n  name: dgc\n  ratio: 0.01\n", {}, "x");
  EXPECT_EQ(given.compression.ratio, 0.01);
  EXPECT_EQ(
      parse_config("", {"compression.name=dgc", "compression.ratio=0.02"}, "x").compression.ratio,
      0.02);
  // Control: top-k keeps its own default.
  EXPECT_EQ(parse_config("compression:\n  name: topk\n", {}, "x").compression.ratio, 0.01);
}

TEST(DgcConfig, NesterovNeedsSgdWithMomentumAndReachesTheMemory) {
  const std::string nesterov = "optimizer:\n  nesterov: true\n";
  const Config c = parse_config(nesterov + "compression:\n  name: dgc\n", {}, "x");
  EXPECT_TRUE(c.optimizer.nesterov);
  EXPECT_TRUE(data_parallel_options(c).compression.compression.dgc.nesterov);
  expect_config_error(nesterov + "  name: adamw\n", "optimizer.nesterov");
  expect_config_error(nesterov + "  momentum: 0\n", "optimizer.nesterov");
  expect_config_error(nesterov + "compression:\n  name: sign\n  momentum_correction: true\n",
                      "optimizer.nesterov");
}

TEST(DgcConfig, TheLayerRefusesErrorFeedbackAndTwoPhaseAndGathers) {
  CompressionOptions o;
  o.name = "dgc";
  o.ratio = 0.01;
  EXPECT_THROW(make_bucket_memory(o, "ef", 0, 4, 0), ConfigError);
  EXPECT_TRUE(make_bucket_memory(o, "none", 0, 4, 0)->clips_locally());
  EXPECT_FALSE(make_bucket_memory(o, "none", 0, 4, 0)->state_is_replicated());
  EXPECT_STREQ(make_bucket_exchange(o, ErrorFeedbackKind::kNone, 4)->path(), "gather");
  o.exchange = "two_phase";
  EXPECT_THROW(make_bucket_exchange(o, ErrorFeedbackKind::kNone, 4), ConfigError);
  o.name = "topk";  // control: topk itself may take two_phase
  EXPECT_STREQ(make_bucket_exchange(o, ErrorFeedbackKind::kNone, 4)->path(), "two_phase");
  o.exchange = "auto";  // and auto gathers while that costs less than dense
  EXPECT_STREQ(make_bucket_exchange(o, ErrorFeedbackKind::kNone, 4)->path(), "gather");
}

// compression.momentum_correction (compression/momentum_correction.h): DGC's momentum correction
// around any error feedback. What the inner memory compresses is u = m u + g, so EF's identity
// holds in u's units: sent + new residual = u + old residual.
TEST(MomentumCorrection, ErrorFeedbackActsOnTheAccumulatedMomentum) {
  CompressionOptions o;
  o.name = "sign";
  o.momentum_correction = true;
  o.dgc.momentum = 0.5;
  auto memory = make_bucket_memory(o, "ef", 0, 4, 0);
  auto compressor = make_compressor(o);
  const std::int64_t n = 1000;
  at::Tensor u = at::zeros({n}, at::kDouble), error = at::zeros({n}, at::kDouble);
  for (int step = 0; step < 6; ++step) {
    const at::Tensor g = gradient_at(step, n);
    u = 0.5 * u + g;
    const at::Tensor input = memory->prepare(0, g);
    EXPECT_TRUE(at::equal(input, u + error)) << "step " << step;
    std::vector<std::uint8_t> payload = compressor->encode(input, PayloadContext{0, step, 0});
    at::Tensor delta = at::empty_like(input);
    compressor->decode(payload.data(), payload.size(), delta, PayloadContext{0, step, 0});
    memory->commit(0, g, input, delta);
    error = input - delta;
    EXPECT_TRUE(at::equal(named(*memory, "0.error"), error)) << "step " << step;
    EXPECT_TRUE(at::equal(named(*memory, "0.momentum"), u)) << "step " << step;
  }
  // The state restores: a fresh memory continues with the same input.
  auto restored = make_bucket_memory(o, "ef", 0, 4, 0);
  restored->load_state(memory->state());
  const at::Tensor g = gradient_at(6, n);
  EXPECT_TRUE(at::equal(restored->prepare(0, g), memory->prepare(0, g)));
  EXPECT_FALSE(restored->state_is_replicated());
  EXPECT_THROW(restored->load_state({{"0.velocity", at::zeros({n}, at::kDouble)}}),
               CheckpointError);
}

// On by default where it is measured to turn chance accuracy into training (sign with ef, top-k
// with any error feedback) under momentum SGD; an explicit value is kept.
TEST(MomentumCorrection, OnByDefaultWhereErrorFeedbackMeetsMomentum) {
  const auto corrected = [](const std::string& name, const std::string& feedback,
                            const std::string& extra = "") {
    return parse_config(str_cat("compression:\n  name: ", name, "\n  error_feedback: ", feedback,
                                "\n", extra),
                        {}, "x")
        .compression.momentum_correction;
  };
  for (const char* feedback : {"ef", "ef21", "econtrol"}) EXPECT_TRUE(corrected("topk", feedback));
  EXPECT_TRUE(corrected("sign", "ef"));
  // Controls: where it does not help, where there is no momentum, and where the file says no.
  EXPECT_FALSE(corrected("sign", "econtrol"));
  EXPECT_FALSE(corrected("topk", "none"));
  EXPECT_FALSE(corrected("randomk", "ef"));
  EXPECT_FALSE(corrected("topk", "econtrol", "optimizer:\n  momentum: 0\n"));
  EXPECT_FALSE(corrected("topk", "econtrol", "  momentum_correction: false\n"));
}

TEST(MomentumCorrection, ConfigRefusesWhatItCannotRunNamingTheKey) {
  const std::string mc = "compression:\n  name: sign\n  momentum_correction: true\n";
  EXPECT_NO_THROW(parse_config(mc + "  error_feedback: ef\n", {}, "x"));
  expect_config_error(mc + "optimizer:\n  name: adamw\n", "optimizer.name");
  expect_config_error(mc + "sync:\n  strategy: diloco\n", "sync.strategy");
  expect_config_error("compression:\n  name: dgc\n  momentum_correction: true\n",
                      "compression.momentum_correction");
}

}  // namespace
}  // namespace braid
