// Measuring a candidate module against its reference: the tuner's runner. Both modules are
// the same model compiled with different knobs for one task; the candidate's steps of that
// task must write what the reference's write (bytes equal for integer values, relative L2 error
// <= 1e-4 for fp32), and their per-step times are taken in interleaved runs of both modules on
// one seeded input. `qnnc measure` runs it in a process of its own, so a candidate that crashes
// or hangs takes only that process down.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/module.h"

namespace qnnc {

// Returns {"ok": bool, "why": "...", "steps": [{"step", "ms", "ref_ms", "max_abs_diff",
// "rel_l2", "exact"}], "candidate_ms", "reference_ms" (mean per call over the steps, of the
// per-step medians), "candidate_min_ms" (the same of the per-step minima)}.
// "3,4,7" -> {3, 4, 7} (empty items skipped); std::invalid_argument on a non-number.
std::vector<int> parse_step_list(const std::string &list);

nlohmann::json measure_against_reference(Module &candidate, Module &reference, const std::vector<int> &steps,
                                         int repeat, uint64_t seed);

}  // namespace qnnc
