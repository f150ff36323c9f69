// The one wording of an option outside its rule: "key: must be RULE, got VALUE" (ConfigError).
#pragma once

#include <string>

#include "common/error.h"

namespace braid {

inline void require_option(bool ok, const char* key, const std::string& rule,
                           const std::string& value) {
  if (!ok) throw ConfigError(str_cat(key, ": must be ", rule, ", got ", value));
}

}  // namespace braid
