// Errors that name braid train's config keys also name the DataParallelOptions field of each,
// for programs that fill the options themselves.
#include <gtest/gtest.h>

#include "runtime/option_names.h"

namespace braid {
namespace {

TEST(OptionNames, ConfigKeysMapToTheirFields) {
  EXPECT_EQ(data_parallel_option("sync.overlap"), "overlap");
  EXPECT_EQ(data_parallel_option("compression.ratio"), "compression.compression.ratio");
  EXPECT_EQ(data_parallel_option("compression.error_feedback"), "compression.error_feedback");
  EXPECT_EQ(data_parallel_option("compression.estimate_init"),
            "compression.compression.estimate_init");
  EXPECT_EQ(data_parallel_option("outer.lr"), "outer.optimizer.lr");
  EXPECT_EQ(data_parallel_option("outer.fragments"), "outer.fragments");
  EXPECT_EQ(data_parallel_option("coding.stragglers"), "coding_stragglers");
  EXPECT_EQ(data_parallel_option("data.path"), "");  // not a DataParallel option
}

TEST(OptionNames, MessagesGetEachFieldOnce) {
  EXPECT_EQ(with_option_names("compression.ratio: must be in (0, 1], got 2"),
            "compression.ratio: must be in (0, 1], got 2 "
            "(DataParallelOptions::compression.compression.ratio)");
  EXPECT_EQ(with_option_names("sync.strategy 'co2' with sync.overlap and sync.strategy"),
            "sync.strategy 'co2' with sync.overlap and sync.strategy "
            "(DataParallelOptions::strategy, DataParallelOptions::overlap)");
  EXPECT_EQ(with_option_names("data.path: no such directory"), "data.path: no such directory");
}

}  // namespace
}  // namespace braid
