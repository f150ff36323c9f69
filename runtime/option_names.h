// The embedding API's names for braid train's config keys. Errors from the strategy and
// compression layers name config keys ("compression.ratio: must be in (0, 1]"), which a program
// that fills DataParallelOptions itself never wrote; DataParallel appends the field each key
// is, so the message names what the reader set either way.
#pragma once

#include <string>

namespace braid {

// "compression.ratio" -> "compression.compression.ratio"; "" for a key without a field.
std::string data_parallel_option(const std::string& config_key);

// `message` with " (DataParallelOptions::<field>, ...)" appended for the config keys it names;
// unchanged when it names none.
std::string with_option_names(const std::string& message);

}  // namespace braid
