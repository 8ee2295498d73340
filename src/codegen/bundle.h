// Deployable bundles for cross targets: one statically linked executable (runtime + the
// model's kernels + Halide's runtime) that reads graph.json and weights.bin beside it.
#pragma once
#include <string>
#include <vector>

#include "codegen/target.h"

namespace qnnc {

// Links dir/qnnc-run for target from the kernel objects (whose functions are fns).
void link_bundle(const TargetInfo &target, const std::vector<std::string> &kernel_objects,
                 const std::vector<std::string> &fns, const std::string &runtime_object, const std::string &dir);

}  // namespace qnnc
