#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace braid {

void init_logging(int rank, int size, spdlog::level::level_enum level) {
  auto logger = spdlog::stderr_color_mt(fmt::format("braid-{}", rank));
  logger->set_pattern(size > 1 ? fmt::format("[%H:%M:%S.%e] [rank {}] [%^%l%$] %v", rank)
                               : "[%H:%M:%S.%e] [%^%l%$] %v");
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace braid
