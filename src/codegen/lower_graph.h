// Lowers a fused, laid-out graph to an execution plan: one step per node, each naming its
// kernel spec and the exact buffer views (Halide dims) of its arguments; constants are
// rearranged into the layout their kernel reads.
#pragma once
#include <array>
#include <map>
#include <string>
#include <vector>

#include "codegen/target.h"
#include "ir/graph.h"
#include "kernels/kernel_spec.h"

namespace qnnc {

struct PlanValue {
  std::string name;
  std::string kind;               // input, act, const
  std::vector<int64_t> shape;     // logical shape
  std::string layout;             // NCHW, NHWC, plain
  DType dtype = DType::f32;
  std::vector<uint8_t> bytes;     // const only: elements of dtype, in the kernel's layout
  float scale = 0;                // integer activations: real = (q - zero_point) * scale
  int zero_point = 0;
  int alias_of = -1;
  int64_t channel_offset = -1;    // >= 0: a slice, channels [offset, +C) of alias_of (concat_slices.h)
};

struct PlanArg {
  int value;
  std::vector<std::array<int64_t, 3>> dims;  // {min, extent, stride}, innermost first
};

struct PlanStep {
  std::string name, op;
  bool alias = false;             // output is a view of the input (flatten); no kernel
  KernelSpec spec;
  std::string fn;                 // filled by the driver
  std::string halide_target;      // filled by the driver
  std::vector<PlanArg> args;      // kernel argument order, output last
  std::vector<int> reads, writes;
  std::vector<int> extra_reads;   // plan-only values read (e.g. bit planes made by a prior step)
  bool tuned = false;             // knobs from a tuning record (else the family's defaults)
};

struct LoweredModule {
  std::string precision = "fp32";  // of the integer kernels (int8, w4a8, ...); recorded in graph.json
  std::vector<PlanValue> values;
  std::vector<PlanStep> steps;
  std::vector<int> inputs, outputs;
  int concats = 0, concats_in_place = 0;  // channel concatenations; those written without a copy
  // Tasks with a tuning record that was measured against another default schedule than this
  // qnnc's (see lower_graph's tuned_defaults): task signature -> describe. Not applied.
  std::map<std::string, std::string> stale_tuned;
};

// Resolves every step's schedule knobs for target (defaults overridden by spec.knobs), since
// constants are packed in the blocking the schedule chooses.
// overrides: knobs forced on every kernel of a family, e.g. {"conv2d": {{"x_tile", 7}}}.
// tuned: knobs per task (tune/records.h task_signature), from tuning records; overrides win.
// tuned_defaults: per task, the default knobs those records were measured against. Where they
// are not the default this lowering chooses (in normal form), the record beat a schedule that
// is no longer the default; it is not applied and the task is listed in stale_tuned.
LoweredModule lower_graph(const Graph &g, const TargetInfo &target,
                          const std::map<std::string, Knobs> &overrides = {},
                          const std::map<std::string, Knobs> &tuned = {},
                          const std::map<std::string, Knobs> &tuned_defaults = {});

// Writes weights.bin, graph.json and graph.txt; returns the weight bytes.
int64_t write_module_files(const LoweredModule &lm, const Graph &g, const TargetInfo &t, const std::string &dir);

}  // namespace qnnc
