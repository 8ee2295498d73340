// Kernels at the borders between fp32 and integer layers.
#include "kernels/knob_space.h"
#include <algorithm>

#include "kernels/families.h"
#include "kernels/requantize.h"

using namespace Halide;
using namespace Halide::ConciseCasts;

namespace qnnc {

namespace {
void schedule_flat(Func out, Var i, int64_t total, const Knobs &k) {
  int vec = knob(k, "vec", 16);
  Var io("io"), ii("ii");
  if (total >= 8192) out.split(i, io, ii, 4096, TailStrategy::GuardWithIf).parallel(io).vectorize(ii, vec);
  else if (total >= vec) out.vectorize(i, vec, TailStrategy::GuardWithIf);
}
}  // namespace

// q = clamp(round(x * (1 / scale)) + zp, 0, qmax), elementwise over a flattened tensor; ties
// as spec.rounding says.
HalideKernel build_quantize(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t total = numel(s.out_shape);
  ImageParam x = fixed_param(Float(32), "input", {total});
  Var i("i");
  Func out("output");
  Expr q = i32(round_float(x(i) * (1.0f / s.scale), s.rounding)) + s.zero_point;
  out(i) = u8(clamp(q, 0, s.qmax));
  fix_output(out, {total});
  schedule_flat(out, i, total, k);
  return {Pipeline(out), {x}};
}

// x = (q - zp) * scale.
HalideKernel build_dequantize(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t total = numel(s.out_shape);
  ImageParam q = fixed_param(UInt(8), "input", {total});
  Var i("i");
  Func out("output");
  out(i) = f32(i32(q(i)) - s.zero_point) * s.scale;
  fix_output(out, {total});
  schedule_flat(out, i, total, k);
  return {Pipeline(out), {q}};
}

std::vector<KnobSpace> quant_ops_knob_spaces() {
  KnobDecl vec{"vec", "lanes per vector", {8, 16, 32, 64}, {}};
  return {{"quantize", "fp32 -> u8", {vec}}, {"dequantize", "u8 -> fp32", {vec}}};
}

}  // namespace qnnc
