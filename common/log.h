// Logging: spdlog with a rank prefix ("[rank 3] ..."). init_logging() is called once by the
// runtime bootstrap; before that, messages go to spdlog's default logger without a prefix.
#pragma once

#include <spdlog/spdlog.h>

namespace braid {

void init_logging(int rank, int size, spdlog::level::level_enum level = spdlog::level::info);

}  // namespace braid
