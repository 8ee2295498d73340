// A kernel family's schedule space, declared once: each knob's name, what it does, the values a
// tuner searches, the values `--knob` accepts, and whether changing it also changes how
// lowering packs the kernel's constants. The schedules read knobs by these names, `--knob`
// validation and `qnnc knobs` read the declarations, and so will the tuner.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kernels/kernel_spec.h"

namespace Halide {
struct Target;
}

namespace qnnc {

struct KnobDecl {
  std::string name;
  std::string help;
  std::vector<int> search;    // values a tuner tries (empty: the knob is not searched)
  std::vector<int> accepts;   // values --knob accepts; empty: any positive integer
  bool packs = false;         // lowering lays out constants by it (weights are re-packed)
  bool semantic = false;      // changes what is computed or the data format: set by lowering
                              // (bit widths, signedness), not a schedule choice
};

struct KnobSpace {
  std::string family;
  std::string help;           // what the family's kernels compute
  std::vector<KnobDecl> knobs;
  // Optional: the canonical form of a knob set for a kernel, where the schedule clamps knobs
  // (x_tile beyond the width, more channel vectors than the layer has). Knob sets with equal
  // canonical forms compile to the same schedule, so a tuner measures only one of them.
  std::function<Knobs(const KernelSpec &, Knobs)> normalize;
  // Optional: what lowering does to knobs on a target before compiling (it turns off what the
  // target cannot run, like AMX tiles without AMX), so that a tuner does not propose them.
  std::function<Knobs(const KernelSpec &, Knobs, const Halide::Target &)> for_target;
  const KnobDecl *find(const std::string &name) const;
  // Names of the knobs a tuner searches, in declaration order.
  std::vector<std::string> tunable() const;
};

// Whether `family` has knobs a tuner searches (false for unknown families).
bool has_tunable_knobs(const std::string &family);

// The first knob of `want` that `have` lacks or sets to another value ("" when `have` carries
// all of them): whether a kernel's knobs are those a tuning record or candidate asked for.
std::string knob_mismatch(const Knobs &have, const Knobs &want);

// spec's knobs k in canonical form (k unchanged for a family without a normalize).
Knobs normalized_knobs(const KernelSpec &spec, const Knobs &k);
// The same, first as lowering changes them for target t (KnobSpace::for_target).
Knobs normalized_knobs(const KernelSpec &spec, const Knobs &k, const Halide::Target &t);

// Every kernel family's space, by family (kernel kind) name.
const std::map<std::string, KnobSpace> &knob_spaces();

// Throws qnnc::Error for an unknown family, an unknown knob or a value the knob does not
// accept, naming what is allowed.
void validate_knobs(const std::string &family, const Knobs &k);

// Text listing of spaces (all, or one family), for `qnnc knobs`.
std::string describe_knob_spaces(const std::string &family = "");

}  // namespace qnnc
