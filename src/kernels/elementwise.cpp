// Elementwise kernels: residual add, per-channel affine, layout transpose.
#include "kernels/knob_space.h"
#include <algorithm>
#include <cmath>

#include "kernels/families.h"
#include "kernels/requantize.h"

using namespace Halide;

namespace qnnc {

HalideKernel build_add(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t total = numel(s.out_shape);
  ImageParam a = fixed_param(Float(32), "a", {total});
  ImageParam b = fixed_param(Float(32), "b", {total});
  Var i("i");
  Func out("output");
  Expr v = a(i) + b(i);
  out(i) = fused_activation(v, s);
  fix_output(out, {total});
  int vec = knob(k, "vec", 8);
  int chunk = knob(k, "chunk", 4096);
  Var io("io"), ii("ii");
  if (total >= chunk) out.split(i, io, ii, chunk, TailStrategy::GuardWithIf).parallel(io).vectorize(ii, vec);
  else if (total >= vec) out.vectorize(i, vec, TailStrategy::GuardWithIf);
  return {Pipeline(out), {a, b}};
}

HalideKernel build_relu(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t total = numel(s.out_shape);
  ImageParam a = fixed_param(Float(32), "input", {total});
  Var i("i");
  Func out("output");
  out(i) = s.relu_max > 0 ? clamp(a(i), 0.f, s.relu_max) : max(a(i), 0.f);
  fix_output(out, {total});
  int vec = knob(k, "vec", 8);
  if (total >= vec) out.vectorize(i, vec, TailStrategy::GuardWithIf);
  return {Pipeline(out), {a}};
}

HalideKernel build_scale_shift(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  ImageParam in = fixed_param(Float(32), "input", {C, W, H, N});
  ImageParam scale = fixed_param(Float(32), "scale", {C});
  ImageParam shift = fixed_param(Float(32), "shift", {C});
  Var c("c"), x("x"), y("y"), n("n");
  Func out("output");
  // Strict IEEE arithmetic (a multiply, then an add; never a fused multiply-add), so that the
  // value is the same on every target and the same whether the kernel stores it or quantizes
  // it (spec.scale: a quantize step folded in, quantize_graph.cpp), which is also strict.
  Expr v = strict_float(fused_activation(in(c, x, y, n) * scale(c) + shift(c), s));
  if (s.scale > 0) v = quantize_level(v, s.scale, s.zero_point, s.qmax, s.rounding);
  out(c, x, y, n) = v;
  fix_output(out, {C, W, H, N});
  int vec = knob(k, "vec", 8);
  if (C >= vec) out.vectorize(c, vec, TailStrategy::GuardWithIf);
  out.parallel(y);
  return {Pipeline(out), {in, scale, shift}};
}

HalideKernel build_layout(const KernelSpec &s, const Knobs &k, const Target &t) {
  Var c("c"), x("x"), y("y"), n("n");
  Func out("output");
  int vec = knob(k, "vec", 8);
  const auto &sh = s.in_shape;
  if (s.to_nhwc) {
    ImageParam in = fixed_param(Float(32), "input", nchw_dims(sh));
    out(c, x, y, n) = in(x, y, c, n);
    fix_output(out, nhwc_dims(sh));
    // (A scalar loop per element cost 1 ns each at 224x224x3.)
    schedule_nchw_to_nhwc(out, sh, vec);
    return {Pipeline(out), {in}};
  }
  ImageParam in = fixed_param(Float(32), "input", nhwc_dims(sh));
  out(x, y, c, n) = in(c, x, y, n);
  fix_output(out, nchw_dims(sh));
  if (sh[3] >= vec) out.vectorize(x, vec, TailStrategy::GuardWithIf);
  out.parallel(c);
  return {Pipeline(out), {in}};
}

}  // namespace qnnc

namespace qnnc {

// erf(x) as x P(x^2) / Q(x^2) on |x| <= 4 (beyond, erf is +-1 within 1.6e-8), P and Q of degree
// 5, fitted by iterated weighted least squares (scripts/fit_erf.py): at most 3.5e-7 from erf in
// float32. 11 multiply-adds and a division, where the erfc form with exp before it took about
// 60 instructions per vector: ConvNeXt-Tiny fp32 (GELUs in the 1x1 convolutions' epilogues)
// 127.9 -> 118.8 ms at one thread, its 56x56 96 -> 384 layer 4.30 -> 3.09 ms (AMD EPYC Zen 3,
// `qnnc bench --profile`, 2026-12-07); outputs within 1.7e-6 of the old form's.
Expr erf_approx(Expr x) {
  static const float p[] = {1.128378987e+00f, 1.923081875e-01f, 5.298176408e-02f,
                            3.844706342e-03f, 2.861880057e-04f, 2.027286655e-06f};
  static const float q[] = {1.f, 5.037605762e-01f, 1.148795336e-01f, 1.512442902e-02f, 1.181057421e-03f, 3.792855568e-05f};
  Expr xc = clamp(x, -4.f, 4.f), t = xc * xc;
  Expr num = p[5], den = q[5];
  for (int i = 4; i >= 0; i--) {
    num = p[i] + t * num;
    den = q[i] + t * den;
  }
  return clamp(xc * num / den, -1.f, 1.f);
}

Expr unary_function(const std::string &fn, const std::vector<float> &params, Expr x) {
  auto sigmoid = [](Expr e) { return 1.f / (1.f + exp(-e)); };
  if (fn == "sigmoid") return sigmoid(x);
  if (fn == "hardsigmoid") {
    float alpha = params.size() > 0 ? params[0] : 0.2f, beta = params.size() > 1 ? params[1] : 0.5f;
    return clamp(alpha * x + beta, 0.f, 1.f);
  }
  if (fn == "hardswish") return x * clamp(x * (1.f / 6.f) + 0.5f, 0.f, 1.f);
  if (fn == "silu") return x * sigmoid(x);
  if (fn == "tanh") return tanh(x);
  if (fn == "erf") return erf_approx(x);
  if (fn == "gelu") return 0.5f * x * (1.f + erf_approx(x * (float)M_SQRT1_2));
  if (fn == "sqrt") return sqrt(x);
  throw Error("unary kernel: unknown function '" + fn + "'");
}

HalideKernel build_unary(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t total = numel(s.out_shape);
  ImageParam a = fixed_param(Float(32), "input", {total});
  Var i("i");
  Expr v = unary_function(s.fn, s.fparams, a(i));
  Func out("output");
  out(i) = fused_activation(v, s);
  fix_output(out, {total});
  int vec = knob(k, "vec", 8), chunk = knob(k, "chunk", 4096);
  Var io("io"), ii("ii");
  if (total >= chunk) out.split(i, io, ii, chunk, TailStrategy::GuardWithIf).parallel(io).vectorize(ii, vec);
  else if (total >= vec) out.vectorize(i, vec, TailStrategy::GuardWithIf);
  return {Pipeline(out), {a}};
}

HalideKernel build_binary(const KernelSpec &s, const Knobs &k, const Target &t) {
  const size_t r = s.out_shape.size();
  if (s.in_shape.size() != r || s.in2_shape.size() != r || r == 0 || r > 6)
    throw Error("binary kernel: operand ranks differ from the output's");
  // spec.dtype u8: `a` holds integers (real = (q - fparams[1]) * fparams[0]), and the output is
  // quantized with spec.scale / zero_point / qmax: the steps dequantize, op, quantize in one.
  const bool q = s.dtype == "u8";
  if (q && (s.fn != "mul" || s.fparams.size() != 2 || s.scale <= 0))
    throw Error("binary kernel: integer operands are for mul with their scale and zero point");
  ImageParam a = fixed_param(q ? UInt(8) : Float(32), "a", s.in_shape);
  ImageParam b = fixed_param(Float(32), "b", s.in2_shape);
  std::vector<Var> vars = dim_vars(r);
  std::vector<Expr> ia, ib;
  std::vector<Var> args(vars.begin(), vars.end());
  for (size_t d = 0; d < r; d++) {
    ia.push_back(s.in_shape[d] == 1 ? Expr(0) : Expr(vars[d]));
    ib.push_back(s.in2_shape[d] == 1 ? Expr(0) : Expr(vars[d]));
  }
  Expr x = q ? dequantize_level(a(ia), (int)s.fparams[1], s.fparams[0]) : Expr(a(ia)), y = b(ib), v;
  if (s.fn == "add") v = x + y;
  else if (s.fn == "sub") v = x - y;
  else if (s.fn == "mul") v = x * y;
  else if (s.fn == "div") v = x / y;
  else throw Error("binary kernel: unknown function '" + s.fn + "'");
  Func out("output");
  v = fused_activation(v, s);
  if (q) v = quantize_level(v, s.scale, s.zero_point, s.qmax, s.rounding);
  out(args) = v;
  fix_output(out, s.out_shape);
  int vec = knob(k, "vec", 8);
  if (s.out_shape[0] >= vec) out.vectorize(vars[0], vec, TailStrategy::GuardWithIf);
  // Parallel over the outermost dimension with more than one element.
  for (size_t d = r; d-- > 1;)
    if (s.out_shape[d] > 1) {
      out.parallel(vars[d]);
      break;
    }
  return {Pipeline(out), {a, b}};
}

}  // namespace qnnc

namespace qnnc {

HalideKernel build_concat(const KernelSpec &s, const Knobs &k, const Target &t) {
  // Memory extents of the output (innermost first) and the concatenated dimension: given by
  // spec.axis for the general form; else rank-4 NHWC (c, x, y, n) or 2-D (k, n) along dim 0.
  std::vector<int64_t> oext = s.out_shape;
  int axis = (int)s.axis;
  if (axis < 0) {
    const bool four = s.out_shape.size() == 4;
    oext = four ? std::vector<int64_t>{s.out_shape[1], s.out_shape[3], s.out_shape[2], s.out_shape[0]}
                : std::vector<int64_t>{s.out_shape[1], s.out_shape[0]};
    axis = 0;
  }
  std::vector<ImageParam> ins;
  std::vector<ImageParam> args;
  for (size_t i = 0; i < s.parts.size(); i++) {
    std::vector<int64_t> ext = oext;
    ext[axis] = s.parts[i];
    ins.push_back(fixed_param(s.dtype == "u8" ? UInt(8) : Float(32), "in" + std::to_string(i), ext));
    args.push_back(ins.back());
  }
  std::vector<Var> v = dim_vars(oext.size());
  // Each input is copied into its slice by its own update; the pure step only claims the
  // buffer (every element is then written by exactly one update).
  Func out("output");
  out(v) = s.dtype == "u8" ? cast<uint8_t>(0) : Expr(0.f);
  int64_t off = 0;
  int vec = knob(k, "vec", 8) * (s.dtype == "u8" ? 4 : 1);
  for (size_t i = 0; i < ins.size(); i++) {
    Region ranges;
    for (size_t d = 0; d < oext.size(); d++) ranges.push_back(Range(0, (int)(d == (size_t)axis ? s.parts[i] : oext[d])));
    RDom r(ranges);
    std::vector<Expr> src, dst;
    for (int d = 0; d < r.dimensions(); d++) {
      src.push_back(r[d]);
      dst.push_back(d == axis ? r[d] + (int)off : Expr(r[d]));
    }
    out(dst) = ins[i](src);
    Stage st = out.update((int)i);
    if ((axis == 0 ? s.parts[i] : oext[0]) >= vec) st.vectorize(r[0], vec, TailStrategy::GuardWithIf);
    if (r.dimensions() > 2) st.parallel(r[r.dimensions() - 2]);
    off += s.parts[i];
  }
  fix_output(out, oext);
  if (oext[0] >= vec) out.vectorize(v[0], vec, TailStrategy::GuardWithIf);
  return {Pipeline(out), args};
}

std::vector<KnobSpace> elementwise_knob_spaces() {
  KnobDecl vec{"vec", "lanes per vector", {8, 16, 32}, {}};
  KnobDecl chunk{"chunk", "elements per parallel task", {1024, 4096, 16384, 65536}, {}};
  return {{"add", "a + b (+ ReLU)", {vec, chunk}},
          {"relu", "max(x, 0)", {vec}},
          {"unary", "elementwise function of one tensor", {vec, chunk}},
          {"binary", "a op b with broadcasting", {vec}},
          {"scale_shift", "per-channel x * scale + shift", {vec}},
          {"layout", "NCHW <-> NHWC", {vec}},
          {"concat", "concatenation (channels: usually none, its inputs' kernels write into its buffer)",
           {vec,
            {"in_place", "1 (default): channel concatenations are written in place where they can be, with no copy; "
                         "0: every concatenation copies its inputs",
             {}, {0, 1}, false, true}}}};
}

}  // namespace qnnc
