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

// A measurement build for the tuner's board runners (tune/runner.h): dir/qnnc-run holding the
// kernels of all module_dirs (a reference and a candidate of one model, compiled for t), whose
// --measure mode checks and times the candidate's steps against the reference's.
void link_measurement_bundle(const TargetInfo &t, const std::vector<std::string> &module_dirs, const std::string &dir);

}  // namespace qnnc
