// Concatenation without copies, decided on the lowered plan.
//
// Where every input of a channel concatenation (NHWC) is written by one kernel and read only by
// kernels, the producers write straight into their channel range of the concatenation's buffer:
// each input becomes a slice of it (PlanValue::channel_offset), the kernels that write or read a
// slice get its strides (KernelSpec::arg_strides), and the concat step becomes a join with no
// kernel. A concatenation whose inputs already lie side by side in one buffer (DenseNet's
// growing concatenations are prefixes of its block's last one) becomes a slice of that buffer.
// Concatenations that cannot be placed (an input that is a model input or output, a view, read
// by a view, or listed twice) stay copies.
#pragma once
#include "codegen/lower_graph.h"

namespace qnnc {

struct ConcatPlacement {
  int concats = 0;   // channel concatenations in the plan
  int joined = 0;    // of them, written in place (no copy)
};

// With place = false, only counts them (`--knob concat.in_place=0`).
ConcatPlacement place_concat_slices(LoweredModule &lm, bool place = true);

}  // namespace qnnc
