#include "kernels/conv2d_q.h"

#include <algorithm>

using namespace Halide;
using namespace Halide::ConciseCasts;

namespace qnnc {

int conv2d_q_channel_block(const KernelSpec &s, const Knobs &k) {
  const int64_t M = s.out_shape[1];
  int vec = std::max(1, knob(k, "vec", 16));
  int vw = (int)std::min<int64_t>(vec, M);
  return (int)std::min<int64_t>(vw * std::max(1, knob(k, "co_vectors", 2)), (M / vw) * vw);
}

ConvQFuncs define_conv2d_q(const KernelSpec &s, int cb) {
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const int64_t M = s.out_shape[1], OH = s.out_shape[2], OW = s.out_shape[3];
  const int64_t KH = s.kernel[0], KW = s.kernel[1], C4 = (C + 3) / 4, nb = (M + cb - 1) / cb;
  ConvQFuncs f;
  f.input = fixed_param(UInt(8), "input", {C, W, H, N});
  f.weights = fixed_param(Int(8), "weights", {4, cb, C4, KW, KH, nb});
  f.bias = fixed_param(Int(32), "bias", {M});
  f.mult = fixed_param(Int(32), "mult", {M});
  f.shift = fixed_param(Int(32), "shift", {M});
  if (s.residual) f.residual = fixed_param(UInt(8), "residual", {M, OW, OH, N});
  f.qparams = fixed_param(Int(32), "qparams", {8});

  Var c("c"), x("x"), y("y"), n("n");
  bool spatial_pad = s.pads[0] || s.pads[1] || s.pads[2] || s.pads[3];
  f.has_padding = spatial_pad || C % 4 != 0;
  f.padded = Func("padded");
  if (f.has_padding) {
    // Out-of-range taps read the input zero point (the bias carries the matching correction);
    // channels past C meet zero weights.
    f.padded(c, x, y, n) = BoundaryConditions::constant_exterior(
        f.input, u8(f.qparams(0)), {Range(0, (int)C), Range(0, (int)W), Range(0, (int)H), Range()})(c, x, y, n);
  } else {
    f.padded(c, x, y, n) = f.input(c, x, y, n);
  }

  Var co("co");
  RDom r(0, 4, 0, (int)C4, 0, (int)KW, 0, (int)KH, "r");
  Expr ix = x * (int)s.stride[1] + r.z * (int)s.dilation[1] - (int)s.pads[1];
  Expr iy = y * (int)s.stride[0] + r.w * (int)s.dilation[0] - (int)s.pads[0];
  f.acc = Func("acc");
  f.acc(co, x, y, n) = f.bias(co);
  // signed_input: ARM's dot products multiply i8 by i8, so activations enter as x - 128 (a flip
  // of the top bit) and the bias carries + 128 * sum(w); the integers are the same.
  Expr xin = f.padded(r.y * 4 + r.x, ix, iy, n);
  if (knob(s.knobs, "signed_input", 0)) xin = reinterpret(Int(8), xin ^ u8(128));
  f.acc(co, x, y, n) += i32(xin) * i32(f.weights(r.x, co % cb, r.y, r.z, r.w, co / cb));

  Expr v = rounding_mul_shift_right(f.acc(co, x, y, n), f.mult(co), u32(f.shift(co)));
  if (s.residual)
    v += rounding_mul_shift_right(i32(f.residual(co, x, y, n)) - f.qparams(2), f.qparams(3), u32(f.qparams(4)));
  f.output = Func("output");
  f.output(co, x, y, n) = u8(clamp(v + f.qparams(1), f.qparams(5), f.qparams(6)));
  fix_output(f.output, {M, OW, OH, N});
  f.r = r;
  return f;
}

Knobs conv2d_q_default_knobs(const KernelSpec &s, const Target &t) {
  // i32 lanes per vector; the same register-tile reasoning as the fp32 convolution.
  const int vec = t.natural_vector_size<int32_t>();
  const int64_t OW = s.out_shape[3], M = s.out_shape[1];
  int max_x = t.has_feature(Target::AVX512) ? 8 : 4, x_tile = max_x;
  for (int c = max_x; c >= std::max(2, max_x / 2); c--)
    if (OW % c == 0) {
      x_tile = c;
      break;
    }
  int regs = t.has_feature(Target::AVX512) ? 16 : 12, co_vectors = 1;
  for (int cv = std::max(1, regs / x_tile); cv >= 1; cv--)
    if (M % (cv * vec) == 0 || cv == 1) {
      co_vectors = cv;
      break;
    }
  return {{"vec", vec}, {"co_vectors", co_vectors}, {"x_tile", x_tile},
          {"signed_input", t.arch == Target::ARM ? 1 : 0}};
}

void schedule_conv2d_q(ConvQFuncs &f, const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t M = s.out_shape[1], OW = s.out_shape[3];
  Var co = f.output.args()[0], x = f.output.args()[1], y = f.output.args()[2], n = f.output.args()[3];
  int vec = std::max(1, knob(k, "vec", 16));
  int vw = (int)std::min<int64_t>(vec, M);
  int cb = conv2d_q_channel_block(s, k);
  int xt = (int)std::min<int64_t>(std::max(1, knob(k, "x_tile", 4)), OW);

  Var co_o("co_o"), co_i("co_i"), x_o("x_o"), x_i("x_i"), t_("tile");
  f.output.split(co, co_o, co_i, cb, TailStrategy::ShiftInwards)
      .split(x, x_o, x_i, xt, TailStrategy::ShiftInwards)
      .reorder(co_i, x_i, x_o, y, co_o, n)
      .vectorize(co_i, vw)
      .unroll(co_i)
      .unroll(x_i)
      .fuse(y, co_o, t_)
      .parallel(t_);
  f.acc.compute_at(f.output, x_o).vectorize(f.acc.args()[0], vw).unroll(f.acc.args()[0]).unroll(f.acc.args()[1]);
  Var cv = f.acc.args()[0], xv = f.acc.args()[1], yv = f.acc.args()[2], nv = f.acc.args()[3];
  // Innermost: the 4 input channels of one dot product, then the register tile.
  f.acc.update()
      .reorder(f.r.x, cv, xv, f.r.y, f.r.z, f.r.w, yv, nv)
      .atomic()
      .vectorize(f.r.x)
      .vectorize(cv, vw)
      .unroll(cv)
      .unroll(xv);
  if (f.has_padding) {
    Var pc = f.padded.args()[0], py = f.padded.args()[2];
    f.padded.compute_root().parallel(py);
    if (s.in_shape[1] >= 64) f.padded.vectorize(pc, 64, TailStrategy::GuardWithIf);
  }
}

}  // namespace qnnc
