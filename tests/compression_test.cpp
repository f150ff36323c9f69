// compression/: every compressor round-trips its own payload, every decoder rejects malformed
// payloads with a CommError (and survives fuzzing), qsgd is unbiased, and error feedback keeps
// its invariants (docs/config.md, compression).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "compression/compressor.h"
#include "compression/compressor_qsgd.h"
#include "compression/compressor_randomk.h"
#include "compression/compressor_sign.h"
#include "compression/error_feedback.h"
#include "compression/payload.h"
#include "compression/sparse_select.h"

namespace braid {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::unique_ptr<Compressor> make(const std::string& name, double ratio = 0.1, int bits = 4) {
  CompressionOptions options;
  options.name = name;
  options.ratio = ratio;
  options.bits = bits;
  options.seed = 7;
  return make_compressor(options);
}

at::Tensor random_vector(std::int64_t n, at::ScalarType type = at::kDouble, int seed = 1) {
  at::manual_seed(seed);
  return at::randn({n}, at::TensorOptions().dtype(type));
}

at::Tensor decode(const Compressor& c, const Bytes& payload, const at::Tensor& like,
                  PayloadContext context = {}) {
  at::Tensor out = at::empty_like(like);
  c.decode(payload.data(), payload.size(), out, context);
  return out;
}

void expect_comm_error(const Compressor& c, const Bytes& payload, const at::Tensor& like,
                       const std::string& why) {
  at::Tensor out = at::zeros_like(like);
  EXPECT_THROW(c.decode(payload.data(), payload.size(), out, {}), CommError) << why;
}

TEST(CompressionFactory, NamesAndBadOptions) {
  for (const std::string& name : compressor_names()) EXPECT_STREQ(make(name)->name(), name.c_str());
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no ConfigError");
  };
  EXPECT_NE(message([] { make("zip"); }).find("compression.name"), std::string::npos);
  EXPECT_NE(message([] { make("zip"); }).find("randomk"), std::string::npos);
  for (double ratio : {0.0, -0.5, 1.5, std::nan("")}) {
    EXPECT_NE(message([&] { make("topk", ratio); }).find("compression.ratio"), std::string::npos);
    EXPECT_NE(message([&] { make("randomk", ratio); }).find("compression.ratio"),
              std::string::npos);
  }
  for (int bits : {0, 9}) {
    EXPECT_NE(message([&] { make("qsgd", 0.1, bits); }).find("compression.bits"),
              std::string::npos);
  }
  EXPECT_EQ(Compressor::kept_elements(0.01, 10), 1);
  EXPECT_EQ(Compressor::kept_elements(1.0, 10), 10);
  EXPECT_EQ(Compressor::kept_elements(0.25, 10), 3);  // round(2.5) away from zero
  EXPECT_EQ(Compressor::kept_elements(0.5, 0), 0);
}

TEST(CompressionRoundTrip, ExactCompressors) {
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    at::Tensor x = random_vector(1000, type);
    for (const char* name : {"none"}) {
      auto c = make(name);
      EXPECT_TRUE(at::equal(decode(*c, c->encode(x, {}), x), x)) << name;
    }
    // Ratio 1 keeps everything: the decoded tensor is the input, bit for bit.
    for (const char* name : {"topk", "randomk"}) {
      auto c = make(name, 1.0);
      EXPECT_TRUE(at::equal(decode(*c, c->encode(x, {}), x), x)) << name;
    }
    // Values with few mantissa bits are representable in both 16-bit formats.
    at::Tensor representable = at::arange(-64, 64, type) * 0.25;
    for (const char* name : {"fp16", "bf16"}) {
      auto c = make(name);
      EXPECT_TRUE(c->summable());
      Bytes payload = c->encode(representable, {});
      EXPECT_EQ(payload.size(), 128u * 2);
      EXPECT_TRUE(at::equal(decode(*c, payload, representable), representable)) << name;
    }
  }
  EXPECT_EQ(make("fp16")->wire_dtype(), DType::kFloat16);
  EXPECT_EQ(make("bf16")->wire_dtype(), DType::kBFloat16);
}

TEST(CompressionRoundTrip, EmptyTensors) {
  at::Tensor empty = at::empty({0}, at::kDouble);
  for (const std::string& name : compressor_names()) {
    auto c = make(name);
    EXPECT_EQ(decode(*c, c->encode(empty, {}), empty).numel(), 0) << name;
  }
}

TEST(CompressionRoundTrip, SummedHalfPayloadDecodesToTheSum) {
  auto c = make("fp16");
  at::Tensor a = at::arange(0, 8, at::kFloat), b = at::arange(8, 16, at::kFloat);
  Bytes pa = c->encode(a, {}), pb = c->encode(b, {});
  at::Tensor sum = at::empty({8}, at::kHalf);
  for (int i = 0; i < 8; ++i) {
    sum[i] = at::Scalar(c10::Half(reinterpret_cast<const c10::Half*>(pa.data())[i] +
                                  reinterpret_cast<const c10::Half*>(pb.data())[i]));
  }
  Bytes summed(pa.size());
  std::memcpy(summed.data(), sum.data_ptr(), summed.size());
  EXPECT_TRUE(at::equal(decode(*c, summed, a), a + b));
}

TEST(CompressionRoundTrip, TopKKeepsTheLargestAndIsSmall) {
  at::Tensor x = random_vector(1000);
  auto c = make("topk", 0.05);
  Bytes payload = c->encode(x, {});
  at::Tensor y = decode(*c, payload, x);
  at::Tensor kept = y != 0;
  // header + varint k + 50 varint index skips + 50 float64 values, smaller than uint32 indices
  at::Tensor indices = kept.nonzero().view({-1}).contiguous();
  EXPECT_EQ(payload.size(), kPayloadHeaderBytes + 1 +
                                index_skips_size(indices.data_ptr<std::int64_t>(), 50) + 50 * 8);
  EXPECT_LT(payload.size(), kPayloadHeaderBytes + 8 + 50 * (4 + 8));
  EXPECT_EQ(kept.sum().item<std::int64_t>(), 50);
  EXPECT_TRUE(at::equal(y.masked_select(kept), x.masked_select(kept)));
  double smallest_kept = x.abs().masked_select(kept).min().item<double>();
  double largest_dropped = x.abs().masked_select(~kept).max().item<double>();
  EXPECT_GT(smallest_kept, largest_dropped);
  // decode_add adds into what is there.
  at::Tensor acc = at::ones_like(x);
  c->decode_add(payload.data(), payload.size(), acc, {});
  EXPECT_TRUE(at::equal(acc, y + 1));
}

TEST(CompressionRoundTrip, RandomKSharesIndicesAcrossRanksOnly) {
  CompressorRandomK c(0.1, 3);
  PayloadContext rank0{4, 9, 0}, rank1{4, 9, 1}, next_step{4, 10, 0};
  auto indices = c.indices(500, rank0);
  EXPECT_EQ(indices.size(), 50u);
  EXPECT_EQ(indices, c.indices(500, rank1));
  EXPECT_NE(indices, c.indices(500, next_step));
  for (std::size_t i = 1; i < indices.size(); ++i) EXPECT_LT(indices[i - 1], indices[i]);
  at::Tensor x = random_vector(500);
  Bytes payload = c.encode(x, rank1);
  EXPECT_EQ(payload.size(), kPayloadHeaderBytes + 8 + 50 * 8);  // values only
  at::Tensor y = decode(c, payload, x, rank0);
  for (std::int64_t i : indices) EXPECT_EQ(y[i].item<double>(), x[i].item<double>());
  EXPECT_EQ((y != 0).sum().item<std::int64_t>(), 50);
}

TEST(CompressionRoundTrip, SignScaleIsEachChunksMeanAbsolute) {
  at::Tensor x = random_vector(1001, at::kFloat);  // chunks of 512 and 489
  x.narrow(0, 512, 489).mul_(100);                 // a second "layer" with larger values
  auto c = make("sign");
  Bytes payload = c->encode(x, {});
  EXPECT_EQ(payload.size(), kPayloadHeaderBytes + 1 + 2 * 4 + (1001 + 7) / 8);  // no layout
  at::Tensor y = decode(*c, payload, x);
  for (auto [begin, count] : {std::pair<std::int64_t, std::int64_t>{0, 512}, {512, 489}}) {
    at::Tensor xc = x.narrow(0, begin, count), yc = y.narrow(0, begin, count);
    float scale = static_cast<float>(xc.to(at::kDouble).abs().sum().item<double>() / count);
    EXPECT_TRUE(at::equal(yc.abs(), at::full_like(xc, scale))) << "chunk at " << begin;
  }
  EXPECT_TRUE(at::equal(y < 0, x < 0));
}

// A bucket of 510 elements: a 3x100 matrix, a gap of 4 (alignment), 200 biases, a tail of 6.
const BucketLayout kSignLayout = {{0, {3, 100}}, {304, {200}}};

TEST(CompressionRoundTrip, SignTensorScaleIsEachTensorsMeanAbsolute) {
  at::Tensor x = random_vector(510, at::kFloat);
  x.narrow(0, 304, 200).mul_(100);  // the biases' gradients are larger
  CompressorSign sign(SignScale::kTensor), chunks(SignScale::kChunk);
  sign.set_layout(0, kSignLayout);
  chunks.set_layout(0, kSignLayout);
  const std::vector<std::int64_t> runs = {300, 4, 200, 6};
  EXPECT_EQ(sign.runs_of(510, {}), runs);
  Bytes payload = sign.encode(x, {});
  EXPECT_EQ(payload.size(), kPayloadHeaderBytes + 1 + 8 + 4 * 8 + 4 * 4 + (510 + 7) / 8);
  at::Tensor y = decode(sign, payload, x), y_chunks = decode(chunks, chunks.encode(x, {}), x);
  std::int64_t begin = 0;
  for (std::int64_t count : runs) {
    at::Tensor xr = x.narrow(0, begin, count), yr = y.narrow(0, begin, count);
    float scale = static_cast<float>(xr.to(at::kDouble).abs().sum().item<double>() / count);
    EXPECT_TRUE(at::equal(yr.abs(), at::full_like(xr, scale))) << "run at " << begin;
    begin += count;
  }
  EXPECT_TRUE(at::equal(y < 0, x < 0));
  // Control: one chunk of 510 gives the matrix the biases' magnitude.
  EXPECT_GT(y_chunks[0].abs().item<float>(), 10 * y[0].abs().item<float>());
}

// A two-phase chunk [250, 450) of the bucket: the runs are the layout's, clipped to it.
TEST(CompressionRoundTrip, SignRunsFollowTheLayoutFromAChunksOffset) {
  CompressorSign sign(SignScale::kTensor);
  PayloadContext chunk;
  chunk.offset = 250;
  EXPECT_TRUE(sign.runs_of(200, chunk).empty()) << "no layout: chunks of 512";
  sign.set_layout(0, kSignLayout);
  EXPECT_EQ(sign.runs_of(200, chunk), (std::vector<std::int64_t>{50, 4, 146}));
  chunk.offset = 505;
  EXPECT_EQ(sign.runs_of(5, chunk), (std::vector<std::int64_t>{5}));
  chunk.bucket = 1;
  EXPECT_TRUE(sign.runs_of(5, chunk).empty()) << "another bucket";
}

TEST(CompressionValidation, SignRunsMustCoverTheElements) {
  at::Tensor x = random_vector(510);
  CompressorSign sign(SignScale::kTensor);
  sign.set_layout(0, kSignLayout);
  const Bytes good = sign.encode(x, {});
  EXPECT_NO_THROW(decode(sign, good, x));
  const std::size_t kind_at = kPayloadHeaderBytes, lengths_at = kind_at + 1 + 8;
  auto with = [&](std::size_t at, std::int64_t value, std::size_t size = 8) {
    Bytes bad = good;
    std::memcpy(&bad[at], &value, size);
    return bad;
  };
  expect_comm_error(sign, with(kind_at, 2, 1), x, "runs kind 2");
  expect_comm_error(sign, with(kind_at + 1, 511), x, "more runs than elements");
  expect_comm_error(sign, with(kind_at + 1, std::int64_t{1} << 62), x, "a huge run count");
  expect_comm_error(sign, with(kind_at + 1, -1), x, "a negative run count");
  expect_comm_error(sign, with(lengths_at, 0), x, "an empty run");
  expect_comm_error(sign, with(lengths_at, 301), x, "runs past the end");
  expect_comm_error(sign, with(lengths_at, 299), x, "runs short of the end");
  expect_comm_error(sign, with(lengths_at, 510), x, "one run past the end after it");
}

TEST(CompressionRoundTrip, QsgdWithinOneLevel) {
  for (int bits : {1, 4, 8}) {
    at::Tensor x = random_vector(1300);  // 3 chunks, the last partial
    auto c = make("qsgd", 0.1, bits);
    Bytes payload = c->encode(x, {});
    EXPECT_EQ(payload.size(), kPayloadHeaderBytes + 1 + 3 * 4 + (1300 * (bits + 1) + 7) / 8);
    at::Tensor y = decode(*c, payload, x);
    const double levels = (1 << bits) - 1;
    for (std::int64_t chunk = 0; chunk < 3; ++chunk) {
      at::Tensor xs = x.slice(0, chunk * 512, (chunk + 1) * 512);
      at::Tensor ys = y.slice(0, chunk * 512, (chunk + 1) * 512);
      double norm = static_cast<float>(xs.norm().item<double>());
      EXPECT_LE((xs - ys).abs().max().item<double>(), norm / levels * (1 + 1e-6)) << bits;
      EXPECT_TRUE(at::equal(ys < 0, xs < 0) || (ys == 0).any().item<bool>());
    }
  }
}

// Largest |mean of samples - v| in units of the per-element standard error of QSGD's rounding:
// (N/s) sqrt(p (1-p) / samples), p the fractional level.
double max_standard_error(const std::function<at::Tensor(int)>& sample, const at::Tensor& v,
                          int bits, int samples) {
  at::Tensor sum = at::zeros_like(v);
  for (int t = 0; t < samples; ++t) sum += sample(t);
  at::Tensor mean = sum / samples;
  const double s = (1 << bits) - 1;
  double worst = 0;
  for (std::int64_t i = 0; i < v.numel(); ++i) {
    std::int64_t chunk = i / CompressorQsgd::kChunk;
    double norm = static_cast<float>(
        v.slice(0, chunk * CompressorQsgd::kChunk, (chunk + 1) * CompressorQsgd::kChunk)
            .norm()
            .item<double>());
    double r = s * std::abs(v[i].item<double>()) / norm, p = r - std::floor(r);
    double sigma = norm / s * std::sqrt(p * (1 - p) / samples) + 1e-12 * norm;
    worst = std::max(worst, std::abs(mean[i].item<double>() - v[i].item<double>()) / sigma);
  }
  return worst;
}

TEST(CompressionQsgd, UnbiasedAndABiasedRoundingIsCaught) {
  const int bits = 2, samples = 2000;
  at::Tensor v = random_vector(600);
  auto c = make("qsgd", 0.1, bits);
  auto qsgd = [&](int t) {
    PayloadContext context{0, t, 0};
    return decode(*c, c->encode(v, context), v, context);
  };
  EXPECT_LT(max_standard_error(qsgd, v, bits, samples), 6.0);
  // Negative control: QSGD's levels always rounded down must fail the same check.
  auto floor_rounding = [&](int) {
    at::Tensor out = at::empty_like(v);
    for (std::int64_t chunk = 0; chunk * 512 < 600; ++chunk) {
      at::Tensor vs = v.slice(0, chunk * 512, (chunk + 1) * 512);
      double norm = static_cast<float>(vs.norm().item<double>()), s = (1 << bits) - 1;
      out.slice(0, chunk * 512, (chunk + 1) * 512)
          .copy_(vs.sign() * at::floor(vs.abs() * s / norm) * norm / s);
    }
    return out;
  };
  EXPECT_GT(max_standard_error(floor_rounding, v, bits, samples), 6.0);
  // Different ranks draw differently at the same (bucket, step).
  EXPECT_NE(c->encode(v, {0, 0, 0}), c->encode(v, {0, 0, 1}));
  EXPECT_EQ(c->encode(v, {0, 0, 1}), c->encode(v, {0, 0, 1}));
}

// Valid payloads of every compressor for a 300-element float64 tensor.
struct Case {
  std::string name;
  std::unique_ptr<Compressor> compressor;
  Bytes payload;
};
std::vector<Case> valid_payloads(const at::Tensor& x) {
  std::vector<Case> cases;
  for (const std::string& name : compressor_names()) {
    auto c = make(name, 0.1, 3);
    Bytes payload = c->encode(x, {});
    cases.push_back({name, std::move(c), std::move(payload)});
  }
  return cases;
}

TEST(CompressionValidation, TruncatedOversizedAndWrongCount) {
  at::Tensor x = random_vector(300);
  for (Case& c : valid_payloads(x)) {
    for (std::size_t length = 0; length < c.payload.size(); ++length) {
      Bytes prefix(c.payload.begin(), c.payload.begin() + length);
      expect_comm_error(*c.compressor, prefix, x, c.name + " prefix " + std::to_string(length));
    }
    Bytes oversized = c.payload;
    oversized.push_back(0);
    if (c.compressor->summable()) oversized.push_back(0);  // a whole extra 16-bit value
    expect_comm_error(*c.compressor, oversized, x, c.name + " oversized");
    expect_comm_error(*c.compressor, c.payload, random_vector(301), c.name + " count 301");
    expect_comm_error(*c.compressor, c.payload, random_vector(299), c.name + " count 299");
    if (c.compressor->summable()) continue;
    expect_comm_error(*c.compressor, c.payload, x.to(at::kFloat), c.name + " dtype");
    Bytes bad_magic = c.payload;
    bad_magic[0] ^= 0xff;
    expect_comm_error(*c.compressor, bad_magic, x, c.name + " magic");
  }
  // A payload of one kind given to another decoder.
  auto topk = make("topk"), sign = make("sign");
  expect_comm_error(*sign, topk->encode(x, {}), x, "topk payload to sign");
  expect_comm_error(*topk, sign->encode(x, {}), x, "sign payload to topk");
  // qsgd payloads carry their bit width.
  expect_comm_error(*make("qsgd", 0.1, 4), make("qsgd", 0.1, 3)->encode(x, {}), x, "qsgd bits");
}

TEST(CompressionValidation, ErrorsNameRankAndBucket) {
  at::Tensor x = random_vector(10), out = at::empty_like(x);
  auto c = make("sign");
  Bytes payload = c->encode(x, {});
  payload.pop_back();
  try {
    c->decode(payload.data(), payload.size(), out, {3, 0, 2});
    FAIL() << "no CommError";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("payload from rank 2 for bucket 3"), std::string::npos)
        << e.what();
  }
}

TEST(CompressionValidation, TopKIndicesOutOfRangeOrRepeated) {
  // Body: varint k | varint skips | values (sparse_select.h); sparse_select_test covers the codec.
  at::Tensor x = random_vector(300);
  auto c = make("topk", 0.1);
  Bytes payload = c->encode(x, {});
  auto with_body = [&](const Bytes& varints, std::size_t values) {
    Bytes bad(payload.begin(), payload.begin() + kPayloadHeaderBytes);
    for (std::uint8_t byte : varints) bad.push_back(byte);
    bad.resize(bad.size() + values * 8);
    return bad;
  };
  EXPECT_NO_THROW(decode(*c, with_body({2, 0, 0x80 | 42, 2}, 2), x));  // indices 0 and 299
  expect_comm_error(*c, with_body({2, 0, 0x80 | 43, 2}, 2), x, "index == n");
  expect_comm_error(*c, with_body({1, 0xff, 0xff, 0xff, 0xff, 0x0f}, 1), x, "index 2^32 - 1");
  expect_comm_error(*c, with_body({0x80 | 45, 2}, 301), x, "k > n");
  // A failed decode_add leaves the accumulator untouched.
  at::Tensor acc = at::ones_like(x);
  Bytes bad = with_body({2, 0, 0x80 | 43, 2}, 2);
  EXPECT_THROW(c->decode_add(bad.data(), bad.size(), acc, {}), CommError);
  EXPECT_TRUE(at::equal(acc, at::ones_like(x)));
}

// Only CommError may come out of a decoder, whatever the bytes (run under ASan+UBSan by
// scripts/sanitize.sh, where an out-of-bounds access aborts).
TEST(CompressionValidation, FuzzedPayloadsOnlyThrowCommError) {
  at::Tensor x = random_vector(300);
  std::mt19937 rng(12345);
  auto byte = [&] { return static_cast<std::uint8_t>(rng() & 0xff); };
  for (Case& c : valid_payloads(x)) {
    auto survive = [&](const Bytes& bytes) {
      at::Tensor out = at::zeros_like(x);
      try {
        c.compressor->decode_add(bytes.data(), bytes.size(), out, {});
      } catch (const CommError&) {
      }
    };
    for (int i = 0; i < 2000; ++i) {
      // Half of them keep the valid header, to get past it into the body's checks.
      Bytes bytes(rng() % (c.payload.size() + 64));
      for (auto& b : bytes) b = byte();
      if (i % 2 == 0 && !c.compressor->summable()) {
        std::size_t keep = std::min(bytes.size(), kPayloadHeaderBytes);
        if (keep > 0) std::memcpy(bytes.data(), c.payload.data(), keep);
      }
      survive(bytes);
    }
    for (int i = 0; i < 2000; ++i) {
      Bytes mutated = c.payload;
      mutated[rng() % mutated.size()] = byte();
      survive(mutated);
    }
  }
}

TEST(ErrorFeedback, EfSentPlusResidualIsGradientPlusOldResidualExactly) {
  for (const char* name : {"topk", "randomk", "none"}) {
    auto c = make(name, 0.1);
    ErrorFeedback ef(ErrorFeedbackKind::kEf);
    at::Tensor old_residual = at::zeros({200}, at::kDouble);
    for (int step = 0; step < 20; ++step) {
      at::Tensor g = random_vector(200, at::kDouble, step + 10);
      PayloadContext context{0, step, 0};
      Bytes payload = ef.encode(0, g, *c, context);
      at::Tensor sent = decode(*c, payload, g, context);
      at::Tensor residual = ef.state()[0].second;
      EXPECT_TRUE(at::equal(sent + residual, g + old_residual)) << name << " step " << step;
      at::Tensor update = sent.clone();
      ef.finish(0, update);
      EXPECT_TRUE(at::equal(update, sent));  // EF's update is the mean of what was sent
      old_residual = residual.clone();
    }
    if (std::string(name) == "none") EXPECT_EQ(old_residual.abs().max().item<double>(), 0.0);
  }
}

// One step of one worker as CompressedExchange takes it: whole where starts_dense().
at::Tensor one_worker_step(ErrorFeedback& ef, Compressor& c, int bucket, const at::Tensor& g,
                           int step) {
  at::Tensor update;
  if (ef.starts_dense(bucket)) {
    at::Tensor input = ef.prepare(bucket, g);
    ef.commit(bucket, g, input, input);
    update = input.clone();
  } else {
    PayloadContext context{bucket, step, 0};
    update = decode(c, ef.encode(bucket, g, c, context), g, context);
  }
  ef.finish(bucket, update);
  return update;
}

// One worker: the update is h after the step. Returns (sum_t g_t - sum_t h_{t+1}, e_T).
std::pair<at::Tensor, at::Tensor> econtrol_run(ErrorFeedback& ef, Compressor& c, int steps,
                                               std::vector<at::Tensor>* updates = nullptr) {
  at::Tensor gap = at::zeros({6}, at::kDouble);
  for (int t = 0; t < steps; ++t) {
    at::Tensor g = random_vector(6, at::kDouble, 100 + t);
    at::Tensor update = one_worker_step(ef, c, 2, g, t);
    gap += g - update;
    if (updates) updates->push_back(update);
  }
  return {gap, ef.state()[0].second};
}

TEST(ErrorFeedback, EControlTelescopes) {
  auto c = make("topk", 2.0 / 6);  // top-2 of 6, as algorithms_checks.py
  for (auto init : {EstimateInit::kGradient, EstimateInit::kCompressed}) {
    ErrorFeedback ef(ErrorFeedbackKind::kEControl, 0.3, init);
    auto [gap, error] = econtrol_run(ef, *c, 50);
    EXPECT_LT((gap - error).abs().max().item<double>(),
              1e-12 * (1 + gap.abs().max().item<double>()));
    EXPECT_GT(error.abs().max().item<double>(), 0.0);  // the invariant is not vacuous
  }
}

// The papers' start (compression.estimate_init: gradient): a bucket's first exchange goes out
// whole, which leaves h_i = g^0 and e = 0; the later ones compress.
TEST(ErrorFeedback, TheGradientStartSendsABucketsFirstStepWhole) {
  auto c = make("topk", 2.0 / 6);
  for (auto kind : {ErrorFeedbackKind::kEf21, ErrorFeedbackKind::kEControl}) {
    ErrorFeedback ef(kind, 0.3);
    ASSERT_TRUE(ef.starts_dense(2));
    at::Tensor g = random_vector(6, at::kDouble, 100);
    EXPECT_TRUE(at::equal(one_worker_step(ef, *c, 2, g, 0), g));
    ASSERT_EQ(ef.state().size(), 3u);
    for (const auto& [name, tensor] : ef.state()) {
      const bool error = name == "2.error";
      EXPECT_TRUE(at::equal(tensor, error ? at::zeros_like(g) : g)) << name;
    }
    EXPECT_FALSE(ef.starts_dense(2));
    EXPECT_TRUE(ef.starts_dense(3));  // per bucket
    at::Tensor next = random_vector(6, at::kDouble, 101);
    EXPECT_FALSE(at::equal(one_worker_step(ef, *c, 2, next, 1), next));  // compressed again
    ef.load_state({});  // a restore without the bucket starts it afresh
    EXPECT_TRUE(ef.starts_dense(2));
  }
  // Controls: EF keeps no estimate, and the compressed start compresses step 0 too.
  EXPECT_FALSE(ErrorFeedback(ErrorFeedbackKind::kEf).starts_dense(2));
  ErrorFeedback compressed(ErrorFeedbackKind::kEControl, 0.3, EstimateInit::kCompressed);
  EXPECT_FALSE(compressed.starts_dense(2));
  at::Tensor g = random_vector(6, at::kDouble, 100);
  EXPECT_FALSE(at::equal(one_worker_step(compressed, *c, 2, g, 0), g));
  EXPECT_THROW(parse_estimate_init("zero"), ConfigError);
}

TEST(ErrorFeedback, EControlWithEtaZeroIsEf21AndIdentityIsSgd) {
  auto c = make("topk", 2.0 / 6);
  ErrorFeedback econtrol(ErrorFeedbackKind::kEControl, 0.0), ef21(ErrorFeedbackKind::kEf21);
  std::vector<at::Tensor> a, b;
  econtrol_run(econtrol, *c, 30, &a);
  econtrol_run(ef21, *c, 30, &b);
  for (std::size_t t = 0; t < a.size(); ++t) EXPECT_TRUE(at::equal(a[t], b[t])) << t;
  // With the identity compressor every kind's update is the gradient itself.
  auto none = make("none");
  for (auto kind : {ErrorFeedbackKind::kNone, ErrorFeedbackKind::kEf, ErrorFeedbackKind::kEf21,
                    ErrorFeedbackKind::kEControl}) {
    ErrorFeedback ef(kind, 0.5);
    for (int t = 0; t < 5; ++t) {
      at::Tensor g = random_vector(6, at::kDouble, 100 + t);
      Bytes payload = ef.encode(0, g, *none, {0, t, 0});
      at::Tensor update = decode(*none, payload, g);
      ef.finish(0, update);
      EXPECT_TRUE(at::allclose(update, g, 0, 1e-15)) << static_cast<int>(kind) << " step " << t;
    }
  }
}

TEST(ErrorFeedback, StateRestoresBitForBit) {
  auto c = make("topk", 0.2);
  ErrorFeedback a(ErrorFeedbackKind::kEControl, 0.3), b(ErrorFeedbackKind::kEControl, 0.3);
  econtrol_run(a, *c, 7);
  auto state = a.state();
  ASSERT_EQ(state.size(), 3u);
  EXPECT_EQ(state[0].first, "2.error");
  b.load_state(state);
  at::Tensor g = random_vector(6, at::kDouble, 999);
  EXPECT_EQ(a.encode(2, g, *c, {2, 7, 0}), b.encode(2, g, *c, {2, 7, 0}));
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_TRUE(at::equal(a.state()[i].second, b.state()[i].second));
  EXPECT_THROW(b.load_state({{"2.bogus", g}}), CheckpointError);
  EXPECT_THROW(b.load_state({{"2.error", g}}), CheckpointError);  // incomplete
  EXPECT_THROW(parse_error_feedback("ef22"), ConfigError);
  EXPECT_THROW(ErrorFeedback(ErrorFeedbackKind::kEControl, -1), ConfigError);
}

}  // namespace
}  // namespace braid
