// The generated code of one step of a compiled module, rebuilt from its spec and target:
// Halide's lowered loop nest ("stmt") or the assembly ("asm"). For `qnnc inspect`, the
// Python package and the HTML report.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace qnnc {

// layer: a step's name or its kernel function name (see the manifest's "steps"). Throws
// qnnc::Error for an unknown step, a view (no kernel) or an unknown `what`.
std::string kernel_code(const nlohmann::json &manifest, const std::string &layer, const std::string &what);

}  // namespace qnnc
