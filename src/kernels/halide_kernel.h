// A kernel as Halide sees it: the pipeline (algorithm + schedule) and its ordered arguments.
// Every kernel family exposes `define_*` (the algorithm, target independent) and `schedule_*`
// (the knobs applied for a target), in the spirit of TVM's compute/schedule split.
#pragma once
#include <Halide.h>

#include "kernels/kernel_spec.h"

namespace qnnc {

struct HalideKernel {
  Halide::Pipeline pipeline;
  std::vector<Halide::ImageParam> args;  // buffer inputs in call order; the output follows them
  // The arguments as Halide compiles them.
  std::vector<Halide::Argument> arguments() const { return {args.begin(), args.end()}; }
};

// Algorithm + schedule for spec on target. Knobs missing from spec.knobs take defaults.
HalideKernel build_kernel(const KernelSpec &spec, const Halide::Target &target);

// Kernel kinds build_kernel knows (each has a knob space, kernels/knob_space.h).
std::vector<std::string> kernel_families();

// Checks user knob overrides (family -> knob -> value, as from --knob): unknown families or
// knobs and out-of-range values throw qnnc::Error naming them and what is allowed.
void validate_knob_overrides(const std::map<std::string, Knobs> &overrides);

// Default knobs of spec's family on target (what build_kernel uses for missing ones).
Knobs default_knobs(const KernelSpec &spec, const Halide::Target &target);

// Dense parameter with fixed extents, innermost dimension first, zero mins, packed strides.
Halide::ImageParam fixed_param(Halide::Type t, const std::string &name, const std::vector<int64_t> &extents);
// Pins an output buffer to the same fixed shape.
void fix_output(Halide::Func f, const std::vector<int64_t> &extents);

// Halide dims (innermost first) of an N,C,H,W activation in NHWC memory: c, x, y, n.
inline std::vector<int64_t> nhwc_dims(const std::vector<int64_t> &nchw) {
  return {nchw[1], nchw[3], nchw[2], nchw[0]};
}
// ... and in NCHW memory: x, y, c, n.
inline std::vector<int64_t> nchw_dims(const std::vector<int64_t> &nchw) {
  return {nchw[3], nchw[2], nchw[1], nchw[0]};
}

int knob(const Knobs &k, const std::string &name, int dflt);

// Whether Halide 21 emits the u8 x i8 dot product (vpdpbusd) for t: x86 from its Zen 4 feature
// level on (Sapphire Rapids and Zen 5 include it).
inline bool x86_has_u8_dot(const Halide::Target &t) {
  return t.arch == Halide::Target::X86 &&
         (t.has_feature(Halide::Target::AVX512_Zen4) || t.has_feature(Halide::Target::AVX512_Zen5) ||
          t.has_feature(Halide::Target::AVX512_SapphireRapids));
}

// The padded copy of an image's few channels (an fp32 stem reading the model's NCHW input):
// channels unrolled, a vector of 16 columns each, stored interleaved (one element at a time).
// `channels`: the channels the reduction reads. (The integer stem's copy is vectorized over its
// channel groups instead: kernels/conv2d_q.cpp.)
inline void schedule_image_columns(Halide::Func padded, int64_t channels) {
  Halide::Var c = padded.args()[0], x = padded.args()[1], y = padded.args()[2];
  padded.bound(c, 0, (int)channels).reorder(c, x, y).unroll(c).vectorize(x, 16, Halide::TailStrategy::GuardWithIf);
}

// An NHWC output read from an NCHW input (transposes, the input's quantize step): channels in
// vectors when they fill one; an image's few channels unrolled, a vector of columns each,
// stored interleaved; rows in parallel.
inline void schedule_nchw_to_nhwc(Halide::Func out, const std::vector<int64_t> &nchw, int vec) {
  Halide::Var c = out.args()[0], x = out.args()[1], y = out.args()[2], n = out.args()[3];
  if (nchw[1] >= vec)
    out.vectorize(c, vec, Halide::TailStrategy::GuardWithIf);
  else if (nchw[1] <= 4 && nchw[3] >= vec)
    out.reorder(c, x, y, n).unroll(c).vectorize(x, vec, Halide::TailStrategy::GuardWithIf);
  out.parallel(y);
}

// An fp32 function of one value by unary's names (sigmoid, hardsigmoid with params {alpha,
// beta}, hardswish, silu, tanh, erf, gelu, sqrt); the unary kernel and fused epilogues share it.
Halide::Expr unary_function(const std::string &fn, const std::vector<float> &params, Halide::Expr x);

// The fused fp32 epilogue of spec after bias (and residual): its function (spec.act), then none,
// ReLU, or ReLU bounded above (ReLU6).
inline Halide::Expr fused_activation(Halide::Expr v, const KernelSpec &s) {
  if (!s.act.empty()) v = unary_function(s.act, s.act_params, v);
  if (!s.relu) return v;
  return s.relu_max > 0 ? Halide::clamp(v, 0.f, s.relu_max) : Halide::max(v, 0.f);
}

// One Var per dimension for kernels of any rank, named dim0, dim1, ... (never "vN": Halide
// gives its own Vars such names).
inline std::vector<Halide::Var> dim_vars(size_t rank) {
  std::vector<Halide::Var> v;
  for (size_t d = 0; d < rank; d++) v.push_back(Halide::Var("dim" + std::to_string(d)));
  return v;
}

inline int64_t numel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

}  // namespace qnnc
