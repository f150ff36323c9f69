// GradBuckets: layout (reverse registration order, dtype never mixed, cap respected), readiness,
// capture of .grad (zeros and usage slots for undefined ones) and changes to .grad after it.
#include "optimizers/grad_buckets.h"

#include <gtest/gtest.h>

#include <torch/torch.h>
#include <cmath>
#include <limits>

#include "collectives/tensor.h"
#include "common/error.h"
#include "optimizers/replicas.h"
#include "tests/spawn_ranks.h"

namespace braid {
namespace {

std::vector<at::Tensor> parameters() {
  return {at::zeros({4}), at::zeros({2, 3}), at::zeros({5}, at::kDouble), at::zeros({3})};
}

TEST(GradBuckets, LayoutIsReverseOrderSplitByDtypeAndCap) {
  // 16 bytes per float32 bucket at most: {3} and {2,3} cannot share one.
  GradBuckets buckets(parameters(), 24.0 / (1 << 20), /*usage_slots=*/false);
  ASSERT_EQ(buckets.bucket_count(), 4);
  EXPECT_EQ(buckets.bucket_of(3), 0);
  EXPECT_EQ(buckets.bucket_of(2), 1);  // float64 starts its own bucket
  EXPECT_EQ(buckets.bucket_of(1), 2);
  EXPECT_EQ(buckets.bucket_of(0), 3);
  GradBuckets one(parameters(), 1.0, /*usage_slots=*/true);
  EXPECT_EQ(one.bucket_count(), 3);  // float32 {3}, float64 {5}, float32 {2,3} + {4}
  EXPECT_EQ(one.parameters_of(2), (std::vector<int>{1, 0}));
  EXPECT_EQ(one.flat(2).numel(), 6 + 4 + 2 + 1);  // gradients, a usage slot each, non-finite slot
}

// With an allocator the buckets lie in its one block, each 64-byte aligned, zeroed; without one
// (or when it gives nullptr) each bucket has memory of its own.
TEST(GradBuckets, BucketsLieInTheAllocatedBlock) {
  std::vector<char> block(4096, 0);
  std::size_t asked = 0;
  auto allocate = [&](std::size_t bytes) -> void* {
    asked = bytes;
    return block.data();
  };
  GradBuckets buckets(parameters(), 1.0, /*usage_slots=*/true, allocate);
  ASSERT_TRUE(buckets.in_allocated_block());
  ASSERT_EQ(buckets.bucket_count(), 3);
  // float32 3 + 1 slot, float64 5 + 1, float32 10 + 2: 16, 48 and 48 bytes, each rounded to 64.
  EXPECT_EQ(asked, 3u * 64);
  for (int b = 0; b < 3; ++b) {
    EXPECT_EQ(static_cast<char*>(buckets.flat(b).data_ptr()), block.data() + 64 * b) << b;
  }
  EXPECT_TRUE(at::equal(buckets.flat(2), at::zeros({13})));
  GradBuckets refused(parameters(), 1.0, true, [](std::size_t) -> void* { return nullptr; });
  EXPECT_FALSE(refused.in_allocated_block());
  EXPECT_EQ(refused.flat(2).numel(), 13);
  EXPECT_FALSE(GradBuckets(parameters(), 1.0, true).in_allocated_block());
}

// Parameters that get .grad the way autograd sets it.
std::vector<at::Tensor> trainable() {
  std::vector<at::Tensor> params = parameters();
  for (at::Tensor& p : params) p.requires_grad_(true);
  return params;
}

TEST(GradBuckets, ReadinessCaptureOfGradZerosAndUsageSlots) {
  std::vector<at::Tensor> params = trainable();
  GradBuckets buckets(params, 1.0, /*usage_slots=*/true);
  const int b = buckets.bucket_of(0);
  EXPECT_FALSE(buckets.arrive(0));
  EXPECT_FALSE(buckets.arrive(0));  // a second arrival in one backward pass counts once
  EXPECT_FALSE(buckets.complete(b));
  params[0].mutable_grad() = at::full({4}, 2.0f);
  buckets.view(1).fill_(7);  // stale values from an earlier step
  buckets.capture(b);
  EXPECT_TRUE(at::equal(buckets.view(0), at::full({4}, 2.0)));
  EXPECT_TRUE(at::equal(buckets.view(1), at::zeros({6})));  // undefined .grad: zeros
  auto used = buckets.used_anywhere();
  EXPECT_TRUE(used[0]);
  EXPECT_FALSE(used[1]);
  EXPECT_TRUE(buckets.has_gradient(0));
  buckets.reset();
  EXPECT_FALSE(buckets.has_gradient(0));
  EXPECT_FALSE(buckets.arrive(1));
  EXPECT_TRUE(buckets.arrive(0));
}

// What the user does to .grad after a capture is seen: an in-place change (zero_(), another
// accumulation), a new tensor, an undefined one. Reading it is not a change.
TEST(GradBuckets, ChangesToGradAfterCaptureAreSeen) {
  std::vector<at::Tensor> params = trainable();
  GradBuckets buckets(params, 1.0, /*usage_slots=*/true);
  const int b = buckets.bucket_of(0);
  ASSERT_EQ(buckets.bucket_of(1), b);
  EXPECT_EQ(buckets.changed_since_capture(b), 0);  // never captured: both, 0 named first
  params[0].mutable_grad() = at::ones({4});
  buckets.capture(b);
  EXPECT_EQ(buckets.changed_since_capture(b), -1);
  (void)params[0].grad().sum().item<float>();
  EXPECT_EQ(buckets.changed_since_capture(b), -1);
  params[0].mutable_grad().zero_();
  EXPECT_EQ(buckets.changed_since_capture(b), 0);
  buckets.capture(b);
  params[0].mutable_grad() = params[0].grad().clone();  // equal values, another tensor
  EXPECT_EQ(buckets.changed_since_capture(b), 0);
  buckets.capture(b);
  params[1].mutable_grad() = at::ones({2, 3});  // undefined when captured
  params[0].mutable_grad() = at::Tensor();
  EXPECT_EQ(buckets.changed_since_capture(b), 0);
  buckets.capture(b);
  EXPECT_EQ(buckets.changed_since_capture(b), -1);
}

// Device memory is never read through a host pointer. Meta tensors stand in for CUDA ones on a
// CPU-only machine: they have a device other than the CPU and no data, so a raw host read
// (data_ptr) of one crashes or reads nothing, while a path that first copies to the host fails
// with LibTorch's "Cannot copy out of meta tensor". Both paths the review found (the replica
// checksum and the usage slots) must take the copy.
TEST(HostReads, NonCpuTensorsAreCopiedToTheHostBeforeTheyAreRead) {
  auto copy_attempted = [](const std::function<void()>& read) {
    try {
      read();
    } catch (const c10::Error& e) {
      return std::string(e.what()).find("meta") != std::string::npos;
    }
    return false;
  };
  std::vector<at::Tensor> on_meta = {at::zeros({4}, at::kMeta), at::zeros({3}, at::kMeta)};
  GradBuckets buckets(on_meta, 1.0, /*usage_slots=*/true);
  EXPECT_TRUE(copy_attempted([&] { (void)buckets.used_anywhere(); }));
  testing::spawn_ranks(1, [&](Communicator& comm) {
    EXPECT_TRUE(copy_attempted([&] { (void)check_replicas_identical(comm, on_meta); }));
  });
  // The guard every raw read goes through: a CheckError naming the device, never a host read.
  try {
    (void)host_data<float>(on_meta[0], "a test tensor");
    ADD_FAILURE() << "host_data read a meta tensor";
  } catch (const CheckError& e) {
    EXPECT_NE(std::string(e.what()).find("a test tensor: a meta tensor"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(host_data<float>(at::ones({2}), "a CPU tensor")[1], 1.0f);  // CPU: the plain pointer
}

// check_finite names the first parameter (registration order) holding a NaN or inf and sets the
// bucket's last slot; a finite bucket clears it. Summed over ranks, any set slot is seen.
TEST(GradBuckets, CheckFiniteNamesTheFirstParameterAndSetsTheSlot) {
  std::vector<at::Tensor> params = trainable();
  GradBuckets buckets(params, 1.0, /*usage_slots=*/true);
  const int b = buckets.bucket_of(0);
  ASSERT_EQ(buckets.bucket_of(1), b);
  params[0].mutable_grad() = at::ones({4});
  params[1].mutable_grad() = at::full({2, 3}, std::numeric_limits<float>::infinity());
  buckets.capture(b);
  EXPECT_EQ(buckets.check_finite(b), 1);
  EXPECT_TRUE(buckets.nonfinite_anywhere(b));
  buckets.view(0)[2] = std::nanf("");
  EXPECT_EQ(buckets.check_finite(b), 0);
  buckets.view(0).fill_(1);
  buckets.view(1).fill_(3e38f);  // finite values whose sum overflows: still finite
  EXPECT_EQ(buckets.check_finite(b), -1);
  EXPECT_FALSE(buckets.nonfinite_anywhere(b));
}

}  // namespace
}  // namespace braid
