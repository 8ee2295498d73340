// Elementwise kernels: residual add, per-channel affine, layout transpose.
#include <algorithm>

#include "kernels/families.h"

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
  Expr v = in(c, x, y, n) * scale(c) + shift(c);
  out(c, x, y, n) = fused_activation(v, s);
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
    if (sh[1] >= vec) out.vectorize(c, vec, TailStrategy::GuardWithIf);
    out.parallel(y);
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
