#include "collectives/allreduce.h"

#include "collectives/allreduce_auto.h"
#include "collectives/allreduce_hierarchical.h"
#include "collectives/allreduce_native.h"
#include "common/error.h"

namespace braid {

const std::vector<std::string>& allreduce_names() {
  static const std::vector<std::string> names = {"ring", "star",         "rhd", "native",
                                                 "shm",  "hierarchical", "auto"};
  return names;
}

std::unique_ptr<Allreduce> make_allreduce(const std::string& name,
                                          const AllreduceOptions& options) {
  if (name == "ring") return std::make_unique<AllreduceRing>(options.segment_bytes);
  if (name == "star") return std::make_unique<AllreduceStar>(options.segment_bytes);
  if (name == "rhd") return std::make_unique<AllreduceRhd>();
  if (name == "native") return std::make_unique<AllreduceNative>();
  if (name == "shm") return std::make_unique<AllreduceShm>();
  if (name == "hierarchical") return std::make_unique<AllreduceHierarchical>(options);
  if (name == "auto") return std::make_unique<AllreduceAuto>(options);
  throw ConfigError(str_cat("unknown allreduce algorithm '", name,
                            "' (valid: ring, star, rhd, native, shm, hierarchical, auto)"));
}

}  // namespace braid
