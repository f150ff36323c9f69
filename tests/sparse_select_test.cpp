// compression/sparse_select: the sampled top-k threshold keeps exactly the exact top-k set (ties
// to the lowest indices) on random, heavy-tailed and constant inputs, on both of its paths; the
// varint index-skip codec round-trips its edge cases and rejects every malformed body with a
// CommError naming rank and bucket; and topk's bytes per kept float32 element stay under 7 at
// densities 1% and 0.1%.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "compression/compressor.h"
#include "compression/payload.h"
#include "compression/seeded_rng.h"
#include "compression/sparse_select.h"

namespace braid {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Indices = std::vector<std::int64_t>;

constexpr std::int64_t kLarge = std::int64_t{1} << 18;  // above exact_max_elements: sampled

// The reference: a stable descending sort of |v| keeps the lowest index first among ties.
at::Tensor reference_top_k(const at::Tensor& v, std::int64_t k) {
  at::Tensor order = std::get<1>(at::sort(v.abs(), /*stable=*/true, 0, /*descending=*/true));
  return std::get<0>(at::sort(order.slice(0, 0, k)));
}

at::Tensor input(const std::string& kind, std::int64_t n, at::ScalarType type, int seed) {
  at::manual_seed(seed);
  at::TensorOptions options = at::TensorOptions().dtype(type);
  if (kind == "random") return at::randn({n}, options);
  if (kind == "cauchy") return at::empty({n}, options).cauchy_();
  return at::full({n}, -0.75, options);  // constant: every magnitude ties
}

TEST(SelectTopK, ExactTopKSetOnEveryInputAndPath) {
  for (std::int64_t n : {std::int64_t{1000}, kLarge}) {
    for (double ratio : {0.01, 0.001}) {
      for (const char* kind : {"random", "cauchy", "constant"}) {
        for (at::ScalarType type : {at::kFloat, at::kDouble}) {
          const std::int64_t k = Compressor::kept_elements(ratio, n);
          at::Tensor v = input(kind, n, type, 3);
          at::Tensor expected = reference_top_k(v, k);
          std::string where = std::string(kind) + " n=" + std::to_string(n) +
                              " ratio=" + std::to_string(ratio) + " " + c10::toString(type);
          SeededRng rng({1, 2, 3, 4});
          TopKSelection sampled = select_top_k(v, k, rng);
          EXPECT_EQ(sampled.indices.numel(), k) << where;
          EXPECT_TRUE(at::equal(sampled.indices, expected)) << where;
          EXPECT_EQ(sampled.sampled, n == kLarge) << where;  // both paths are exercised
          EXPECT_GE(sampled.selected, k) << where;
          if (n == kLarge && std::string(kind) != "constant") {
            EXPECT_LT(sampled.selected, n / 4) << where << ": the threshold narrowed nothing";
            std::cout << where << ": selected " << sampled.selected << " for k = " << k << " after "
                      << sampled.lowerings << " lowerings\n";
          }
          // Sampling everything is the exact path, with the same answer.
          TopKSampling everything;
          everything.sample_fraction = 1.0;
          TopKSelection exact = select_top_k(v, k, rng, everything);
          EXPECT_FALSE(exact.sampled) << where;
          EXPECT_TRUE(at::equal(exact.indices, expected)) << where;
          if (std::string(kind) == "constant") {
            EXPECT_TRUE(at::equal(sampled.indices, at::arange(k, at::kLong))) << where;
          }
        }
      }
    }
  }
}

TEST(SelectTopK, DeterministicAndIndependentOfTheSample) {
  at::Tensor v = input("cauchy", kLarge, at::kFloat, 5);
  const std::int64_t k = Compressor::kept_elements(0.001, kLarge);
  SeededRng a({7, 0, 1, 0}), b({7, 0, 1, 0}), c({8, 3, 9, 2});
  at::Tensor first = select_top_k(v, k, a).indices;
  EXPECT_TRUE(at::equal(first, select_top_k(v, k, b).indices));
  EXPECT_TRUE(at::equal(first, select_top_k(v, k, c).indices));
  // Negative control: the comparison sees one index swapped for the (k+1)-th largest.
  at::Tensor wrong = first.clone();
  at::Tensor next = reference_top_k(v, k + 1);
  wrong[0] =
      at::Scalar(next.masked_select(at::isin(next, first).logical_not()).item<std::int64_t>());
  EXPECT_FALSE(at::equal(std::get<0>(at::sort(wrong)), first));
  // ... and ties to the highest indices are not the reference's answer.
  at::Tensor flat = input("constant", 100, at::kFloat, 0);
  EXPECT_FALSE(at::equal(reference_top_k(flat, 3), at::arange(97, 100, at::kLong)));
}

TEST(SelectTopK, FallbackAfterTenLoweringsAndNanStillGiveExactlyK) {
  // Magnitudes over 300 decades: ten lowerings by 0.8 widen the threshold by less than one
  // decade (~0.3% of the entries). With the minimum sample (2n/k entries, threshold = the 2nd
  // largest) the estimate overshoots by more than that for ~40% of the seeds, which then end on
  // the exact fallback.
  const std::int64_t k = Compressor::kept_elements(0.01, kLarge);
  at::manual_seed(11);
  at::Tensor v = at::pow(10.0, at::rand({kLarge}, at::kDouble) * -300.0);
  TopKSampling minimum;
  minimum.sample_fraction = 0;
  int fallbacks = 0;
  for (std::uint64_t seed = 0; seed < 16; ++seed) {
    SeededRng rng({seed});
    TopKSelection s = select_top_k(v, k, rng, minimum);
    EXPECT_TRUE(at::equal(s.indices, reference_top_k(v, k))) << seed;
    if (!s.sampled) ++fallbacks;
  }
  EXPECT_GT(fallbacks, 0);
  // NaN counts as +inf: kept first, and the count is still k.
  v[5] = std::numeric_limits<double>::quiet_NaN();
  SeededRng rng({1});
  TopKSelection s = select_top_k(v, k, rng);
  EXPECT_EQ(s.indices.numel(), k);
  EXPECT_TRUE((s.indices == 5).any().item<bool>());
}

TEST(VarintCodec, EdgeSkipsRoundTrip) {
  EXPECT_EQ(varint_size(0), 1u);
  EXPECT_EQ(varint_size(127), 1u);
  EXPECT_EQ(varint_size(128), 2u);
  EXPECT_EQ(varint_size(16383), 2u);
  EXPECT_EQ(varint_size(16384), 3u);
  EXPECT_EQ(varint_size(std::numeric_limits<std::uint64_t>::max()), 10u);
  Bytes three(3);
  EXPECT_EQ(put_varint(three.data(), 300), three.data() + 2);
  EXPECT_EQ(three[0], 0xac);  // the LEB128 example of the DWARF standard
  EXPECT_EQ(three[1], 0x02);
  const std::int64_t big = std::int64_t{1} << 40, two32 = std::int64_t{1} << 32;
  struct Case {
    Indices indices;
    std::int64_t n;
  };
  // Gaps 1, 127, 128, 129, 16383, 16384, 16385, n - 1; indices around 2^32 in a 2^40 bucket.
  std::vector<Case> cases = {
      {{}, 0},
      {{0}, 1},
      {{0, 1, 128, 256, 385, 16768, 33152, 49537}, 49538},
      {{0, 999}, 1000},
      {{999}, 1000},
      {{two32 - 2, two32 - 1, two32, two32 + 1, two32 + 128, big - 1}, big},
      {{big - 1}, big},
  };
  for (const Case& c : cases) {
    const auto k = static_cast<std::int64_t>(c.indices.size());
    Bytes bytes(index_skips_size(c.indices.data(), k));
    EXPECT_EQ(put_index_skips(bytes.data(), c.indices.data(), k), bytes.data() + bytes.size());
    EXPECT_EQ(read_index_skips(bytes.data(), bytes.size(), k, c.n, {}), c.indices);
  }
  // Gap 1 (skip 0) and gap 128 (skip 127) are one byte, gap 129 two.
  Indices one_byte = {0, 1, 129}, two_bytes = {0, 130};
  EXPECT_EQ(index_skips_size(one_byte.data(), 3), 3u);
  EXPECT_EQ(index_skips_size(two_bytes.data(), 2), 3u);
  // 2^32 - 1 as one skip: five bytes.
  Indices high = {two32 - 1};
  EXPECT_EQ(index_skips_size(high.data(), 1), 5u);
  Indices not_increasing = {3, 3};
  EXPECT_THROW(index_skips_size(not_increasing.data(), 2), CheckError);
}

// `bytes` as the body of k skips in a bucket of n; the error must name rank 3 and bucket 5.
void expect_rejected(const Bytes& bytes, std::int64_t k, std::int64_t n, const std::string& cause) {
  try {
    read_index_skips(bytes.data(), bytes.size(), k, n, {5, 0, 3});
    ADD_FAILURE() << "accepted: " << cause;
  } catch (const CommError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("payload from rank 3 for bucket 5"), std::string::npos) << what;
    EXPECT_NE(what.find(cause), std::string::npos) << what;
  }
}

TEST(VarintCodec, DecoderRejectsMalformedSkips) {
  EXPECT_EQ(read_index_skips(Bytes{0, 0x7e}.data(), 2, 2, 128, {}), (Indices{0, 127}));
  expect_rejected({0, 0x7f}, 2, 128, "leaves [0, 128)");  // index 128 == n
  expect_rejected({0x80}, 1, 1000, "truncated varint");
  expect_rejected({0x05, 0x81}, 2, 1000, "truncated varint");
  expect_rejected({1}, 2, 1000, "truncated: 2 index skips");
  expect_rejected({1, 2, 3}, 2, 1000, "1 bytes after the last index skip");
  expect_rejected({0x80, 0x00}, 1, 1000, "overlong varint");
  // 2^64 - 1 fits; one more bit or byte overflows.
  Bytes max64(9, 0xff);
  max64.push_back(0x01);
  expect_rejected(max64, 1, std::numeric_limits<std::int64_t>::max(), "leaves [0, ");
  Bytes over64(9, 0xff);
  over64.push_back(0x02);
  expect_rejected(over64, 1, std::numeric_limits<std::int64_t>::max(), "overflows 64 bits");
  Bytes eleven(10, 0x80);
  eleven.push_back(0x01);
  expect_rejected(eleven, 1, std::numeric_limits<std::int64_t>::max(), "overflows 64 bits");
  // Skips whose sum would wrap around 2^64: each is checked against what is left of n.
  Bytes wrap(20);
  std::uint8_t* end = put_varint(wrap.data(), std::uint64_t{1} << 62);
  end = put_varint(end, std::numeric_limits<std::uint64_t>::max());
  wrap.resize(end - wrap.data());
  expect_rejected(wrap, 2, std::numeric_limits<std::int64_t>::max(), "leaves [0, ");
  // Skips of 2^39 - 1 twice reach 2^40 - 1, the last index of a 2^40 bucket; one more is past n.
  const std::int64_t big = std::int64_t{1} << 40;
  Bytes skips(5, 0xff);
  skips.push_back(0x0f);
  Bytes twice = skips;
  for (std::uint8_t byte : skips) twice.push_back(byte);
  EXPECT_EQ(read_index_skips(twice.data(), twice.size(), 2, big, {}),
            (Indices{(big >> 1) - 1, big - 1}));
  twice.push_back(0);
  expect_rejected(twice, 3, big, "leaves [0, ");
}

TEST(VarintCodec, FuzzedSkipsOnlyThrowCommErrorAndDecodeInRange) {
  std::mt19937 rng(99);
  for (int i = 0; i < 20000; ++i) {
    Bytes bytes(rng() % 24);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng() % 3 == 0 ? 0x80 | rng() : rng());
    const std::int64_t k = rng() % 8, n = (std::int64_t{1} << (rng() % 63)) + rng() % 3;
    try {
      Indices indices = read_index_skips(bytes.data(), bytes.size(), k, n, {});
      ASSERT_EQ(static_cast<std::int64_t>(indices.size()), k);
      for (std::size_t j = 0; j < indices.size(); ++j) {
        ASSERT_TRUE(indices[j] >= 0 && indices[j] < n);
        if (j > 0) ASSERT_LT(indices[j - 1], indices[j]);
      }
    } catch (const CommError&) {
    }
  }
}

TEST(SparsePayload, RoundTripAndWholePayloadValidation) {
  const std::int64_t n = 5000;
  at::Tensor indices = at::tensor(std::vector<std::int64_t>{0, 127, 128, 4000, 4999});
  at::Tensor values = at::tensor(std::vector<float>{1, -2, 3, -4, 5});
  Bytes payload = encode_sparse(PayloadKind::kTopK, n, indices, values);
  EXPECT_EQ(payload.size(), kPayloadHeaderBytes + 1 + (1 + 1 + 1 + 2 + 2) + 5 * 4);
  SparsePayload decoded =
      decode_sparse(payload.data(), payload.size(), PayloadKind::kTopK, DType::kFloat32, n, {});
  EXPECT_EQ(decoded.indices, (Indices{0, 127, 128, 4000, 4999}));
  EXPECT_EQ(std::memcmp(decoded.values, values.data_ptr(), 5 * 4), 0);
  auto rejected = [&](const Bytes& bytes, std::int64_t count, PayloadKind kind) {
    EXPECT_THROW(decode_sparse(bytes.data(), bytes.size(), kind, DType::kFloat32, count, {}),
                 CommError);
  };
  for (std::size_t length = 0; length < payload.size(); ++length) {
    rejected(Bytes(payload.begin(), payload.begin() + length), n, PayloadKind::kTopK);
  }
  Bytes oversized = payload;
  oversized.push_back(0);
  rejected(oversized, n, PayloadKind::kTopK);
  rejected(payload, n, PayloadKind::kRandomK);
  rejected(payload, 4999, PayloadKind::kTopK);
  Bytes big_k = payload;
  big_k[kPayloadHeaderBytes] = 0x80 | 9;  // k = 9 + 39 * 128 = 5001 > n, as two bytes
  big_k.insert(big_k.begin() + kPayloadHeaderBytes + 1, 39);
  rejected(big_k, n, PayloadKind::kTopK);
  Bytes nine_values = payload;
  nine_values[kPayloadHeaderBytes] = 9;  // more values than the body holds
  rejected(nine_values, n, PayloadKind::kTopK);
  EXPECT_THROW(encode_sparse(PayloadKind::kTopK, 4999, indices, values), CheckError);
}

// Real bytes per kept float32 element, all overhead included, for a 10^6-element bucket: the
// skips of a 1% (0.1%) selection are mostly 1 (2) bytes, so 4-byte values + skips stay under 7.
TEST(SparsePayload, BytesPerKeptFloat32ElementUnderSeven) {
  const std::int64_t n = 1000000;
  at::manual_seed(21);
  at::Tensor g = at::randn({n}, at::kFloat);
  for (double ratio : {0.01, 0.001}) {
    CompressionOptions options;
    options.name = "topk";
    options.ratio = ratio;
    options.seed = 3;
    auto topk = make_compressor(options);
    Bytes payload = topk->encode(g, {0, 1, 0});
    const std::int64_t k = Compressor::kept_elements(ratio, n);
    const double per_element = static_cast<double>(payload.size()) / static_cast<double>(k);
    std::cout << "topk n=" << n << " ratio=" << ratio << " k=" << k << ": " << payload.size()
              << " bytes, " << per_element << " bytes per kept float32 element (uint32 index: "
              << static_cast<double>(kPayloadHeaderBytes + 8 + 8 * k) / k << ")\n";
    RecordProperty("bytes_per_element_ratio_" + std::to_string(ratio), std::to_string(per_element));
    EXPECT_LT(per_element, 7.0) << ratio;
    // The payload decodes to the exact top-k.
    at::Tensor out = at::empty_like(g);
    topk->decode(payload.data(), payload.size(), out, {0, 1, 0});
    EXPECT_TRUE(at::equal(out.nonzero().view({-1}), reference_top_k(g, k))) << ratio;
  }
}

}  // namespace
}  // namespace braid
