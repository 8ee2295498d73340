// fp32 2-D convolution over NHWC activations with a fused epilogue (bias, residual add, ReLU).
// Weights arrive as (co, ci, kx, ky) with co innermost, so each reduction step multiplies one
// broadcast input value by a vector of output channels.
#include "kernels/conv2d.h"

#include <algorithm>

using namespace Halide;

namespace qnnc {

int conv2d_channel_block(const KernelSpec &s, const Knobs &k) {
  const int64_t M = s.out_shape[1];
  int vec = std::max(1, knob(k, "vec", 8));
  int vw = (int)std::min<int64_t>(vec, M);
  return (int)std::min<int64_t>(vw * std::max(1, knob(k, "co_vectors", 2)), (M / vw) * vw);
}

ConvFuncs define_conv2d(const KernelSpec &s, int cb) {
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const int64_t M = s.out_shape[1], OH = s.out_shape[2], OW = s.out_shape[3];
  const int64_t KH = s.kernel[0], KW = s.kernel[1];
  ConvFuncs f;
  f.input = fixed_param(Float(32), "input", {C, W, H, N});
  const int64_t nb = (M + cb - 1) / cb;
  f.weights = fixed_param(Float(32), "weights", {cb, C, KW, KH, nb});
  f.bias = fixed_param(Float(32), "bias", {M});
  if (s.residual) f.residual = fixed_param(Float(32), "residual", {M, OW, OH, N});

  Var co("co"), x("x"), y("y"), n("n");
  bool padded = s.pads[0] || s.pads[1] || s.pads[2] || s.pads[3];
  f.padded = Func("padded");
  if (padded)
    f.padded(co, x, y, n) = BoundaryConditions::constant_exterior(
        f.input, 0.f, {Range(), Range(0, (int)W), Range(0, (int)H), Range()})(co, x, y, n);
  else
    f.padded(co, x, y, n) = f.input(co, x, y, n);

  RDom r(0, (int)C, 0, (int)KW, 0, (int)KH, "r");
  f.conv = Func("conv");
  Expr ix = x * (int)s.stride[1] + r.y * (int)s.dilation[1] - (int)s.pads[1];
  Expr iy = y * (int)s.stride[0] + r.z * (int)s.dilation[0] - (int)s.pads[0];
  f.conv(co, x, y, n) = f.bias(co);
  f.conv(co, x, y, n) += f.weights(co % cb, r.x, r.y, r.z, co / cb) * f.padded(r.x, ix, iy, n);

  Expr v = f.conv(co, x, y, n);
  if (s.residual) v += f.residual(co, x, y, n);
  if (s.relu) v = max(v, 0.f);
  f.output = Func("output");
  f.output(co, x, y, n) = v;
  fix_output(f.output, {M, OW, OH, N});
  f.r = r;
  f.has_padding = padded;
  return f;
}

Knobs conv2d_default_knobs(const KernelSpec &s, const Target &t) {
  const int vec = t.natural_vector_size<float>();
  // Register tile: co_vectors x x_tile accumulators. Prefer an x_tile that divides the output
  // width, so no tile recomputes columns of its neighbour.
  const int64_t OW = s.out_shape[3];
  int max_x = t.has_feature(Target::AVX512) ? 8 : 4, x_tile = max_x;
  for (int c = max_x; c >= std::max(2, max_x / 2); c--)
    if (OW % c == 0) {
      x_tile = c;
      break;
    }
  // About 16 accumulators measured best on AVX-512 (28 spilled); take as many channel vectors
  // preferring a block that divides the channel count.
  const int64_t M = s.out_shape[1];
  int regs = t.has_feature(Target::AVX512) ? 16 : 12, co_vectors = 1;
  for (int cv = std::max(1, regs / x_tile); cv >= 1; cv--)
    if (M % (cv * vec) == 0 || cv == 1) {
      co_vectors = cv;
      break;
    }
  return {{"vec", vec}, {"co_vectors", co_vectors}, {"x_tile", x_tile}, {"unroll_ci", 1}};
}

void schedule_conv2d(ConvFuncs &f, const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t M = s.out_shape[1], OW = s.out_shape[3], C = s.in_shape[1];
  Var co = f.output.args()[0], x = f.output.args()[1], y = f.output.args()[2], n = f.output.args()[3];
  int vec = std::max(1, knob(k, "vec", 8));
  int x_tile = std::max(1, knob(k, "x_tile", 4));
  // Clamp the register block to the layer: a tile may not be wider than the tensor.
  int vw = (int)std::min<int64_t>(vec, M);
  int cb = conv2d_channel_block(s, k);
  int xt = (int)std::min<int64_t>(x_tile, OW);

  Var co_o("co_o"), co_i("co_i"), x_o("x_o"), x_i("x_i"), t_("tile");
  f.output.split(co, co_o, co_i, cb, TailStrategy::ShiftInwards)
      .split(x, x_o, x_i, xt, TailStrategy::ShiftInwards)
      .reorder(co_i, x_i, x_o, y, co_o, n)
      .vectorize(co_i, vw)
      .unroll(co_i)
      .unroll(x_i)
      .fuse(y, co_o, t_)
      .parallel(t_);
  f.conv.compute_at(f.output, x_o).vectorize(co, vw).unroll(co).unroll(x);
  Var cv = f.conv.args()[0], xv = f.conv.args()[1], yv = f.conv.args()[2], nv = f.conv.args()[3];
  auto upd = f.conv.update();
  upd.reorder(cv, xv, f.r.x, f.r.y, f.r.z, yv, nv).vectorize(cv, vw).unroll(cv).unroll(xv);
  int uci = knob(k, "unroll_ci", 1);
  if (uci > 1 && C % uci == 0) upd.unroll(f.r.x, uci);
  if (f.has_padding) {
    Var pc = f.padded.args()[0], py = f.padded.args()[2];
    f.padded.compute_root().parallel(py);
    if (C >= vec) f.padded.vectorize(pc, vec, TailStrategy::GuardWithIf);
  }
}

}  // namespace qnnc
