// Kernels at the borders between fp32 and integer layers.
#include "kernels/knob_space.h"
#include <algorithm>

#include "kernels/families.h"
#include "kernels/requantize.h"

using namespace Halide;

namespace qnnc {

namespace {
void schedule_flat(Func out, Var i, int64_t total, const Knobs &k) {
  int vec = knob(k, "vec", 16);
  Var io("io"), ii("ii");
  if (total >= 8192) out.split(i, io, ii, 4096, TailStrategy::GuardWithIf).parallel(io).vectorize(ii, vec);
  else if (total >= vec) out.vectorize(i, vec, TailStrategy::GuardWithIf);
}

// out = f(in) elementwise. Over the flattened tensor; or, where the spec gives strides (a slice
// of a concatenation's buffer, whose pixels are not adjacent), over (channel, pixel) rows.
template <typename F>
HalideKernel elementwise(const KernelSpec &s, const Knobs &k, Type in_type, F f) {
  const int64_t total = numel(s.out_shape);
  Func out("output");
  if (s.arg_strides.empty()) {
    ImageParam x = fixed_param(in_type, "input", {total});
    Var i("i");
    out(i) = f(x(i));
    fix_output(out, {total});
    schedule_flat(out, i, total, k);
    return {Pipeline(out), {x}};
  }
  const int64_t C = s.out_shape.size() == 4 ? s.out_shape[1] : s.out_shape.back(), P = total / C;
  ImageParam x = fixed_param(in_type, "input", {C, P});
  Var c("c"), p("p"), po("po");
  out(c, p) = f(x(c, p));
  fix_output(out, {C, P});
  const int vec = knob(k, "vec", 16);
  if (C >= vec) out.vectorize(c, vec, TailStrategy::GuardWithIf);
  const int64_t rows = std::max<int64_t>(1, 4096 / C);
  if (P > rows) out.split(p, po, p, (int)rows, TailStrategy::GuardWithIf).parallel(po);
  return {Pipeline(out), {x}};
}
}  // namespace

bool takes_channel_rows(const std::string &kind) { return kind == "quantize" || kind == "dequantize"; }

// q = clamp(round(x * (1 / scale)) + zp, 0, qmax); ties as spec.rounding says.
HalideKernel build_quantize(const KernelSpec &s, const Knobs &k, const Target &t) {
  if (knob(k, "from_nchw", 0)) {
    // NCHW fp32 in, NHWC u8 out (a model's input): one pass instead of a transpose and a quantize.
    const auto &sh = s.in_shape;
    ImageParam in = fixed_param(Float(32), "input", nchw_dims(sh));
    Var c("c"), x("x"), y("y"), n("n");
    Func out("output");
    out(c, x, y, n) = quantize_level(in(x, y, c, n), s.scale, s.zero_point, s.qmax, s.rounding);
    fix_output(out, nhwc_dims(sh));
    schedule_nchw_to_nhwc(out, sh, knob(k, "vec", 16));
    return {Pipeline(out), {in}};
  }
  return elementwise(s, k, Float(32), [&](Expr x) { return quantize_level(x, s.scale, s.zero_point, s.qmax, s.rounding); });
}

// x = (q - zp) * scale.
HalideKernel build_dequantize(const KernelSpec &s, const Knobs &k, const Target &t) {
  return elementwise(s, k, UInt(8), [&](Expr q) { return dequantize_level(q, s.zero_point, s.scale); });
}

std::vector<KnobSpace> quant_ops_knob_spaces() {
  KnobDecl vec{"vec", "lanes per vector", {8, 16, 32, 64}, {}};
  KnobDecl from_nchw{"from_nchw", "1: reads NCHW and writes NHWC (a model's input; set by lowering)", {}, {0, 1},
                     false, true};
  return {{"quantize", "fp32 -> u8", {vec, from_nchw}}, {"dequantize", "u8 -> fp32", {vec}}};
}

}  // namespace qnnc
