// The resume fingerprint: the config keys a resumed run depends on, with their values. A
// checkpoint stores it; resuming compares it with the current config and refuses (ConfigError
// naming the key) a change that would make the resumed run differ from an uninterrupted one:
// the data order (seed, batch size, data set), the model, the optimizer and its schedule.
// Keys a resumed run does not depend on (log and checkpoint intervals, the sync algorithm, the
// timeout) may change freely, so a run can be continued with another `train.max_steps` as long
// as its learning-rate schedule does not depend on the total number of steps.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "runtime/config.h"

namespace braid {

// (key, value as text) in a fixed order; strings are quoted.
using ResumeFingerprint = std::vector<std::pair<std::string, std::string>>;

ResumeFingerprint resume_fingerprint(const Config& config);

// "" when `current` matches `stored`; otherwise one clause per changed key, e.g.
// "data.batch_size was 64 in checkpoint <source>, the config says 32", joined with "; ".
std::string fingerprint_changes(const ResumeFingerprint& stored, const ResumeFingerprint& current,
                                const std::string& source);

}  // namespace braid
