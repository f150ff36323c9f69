#pragma once
// The prefixes under which the strategies file their parts of a checkpoint's state. They are
// part of the checkpoint format (a renamed prefix cannot resume an older run), so every
// strategy takes them from here rather than spelling them itself.
#include <string>

namespace braid {

inline constexpr const char* kAnchorPrefix = "anchor.";
inline constexpr const char* kOuterPrefix = "outer.";
inline constexpr const char* kExchangePrefix = "exchange.";
inline constexpr const char* kStartPrefix = "start.";
inline constexpr const char* kPendingPrefix = "pending.";
inline constexpr const char* kInflightPrefix = "inflight.";
inline constexpr const char* kAggregatorPrefix = "aggregator.";

inline bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

}  // namespace braid
