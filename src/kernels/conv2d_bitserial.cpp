#include "kernels/knob_space.h"
#include "kernels/conv2d_bitserial.h"
#include "kernels/register_tile.h"
#include "kernels/requantize.h"

#include <algorithm>

using namespace Halide;
using namespace Halide::ConciseCasts;

namespace qnnc {

std::vector<int> bitserial_plane_coefficients(int weight_bits) {
  if (weight_bits == 1) return {2};
  if (weight_bits < 1 || weight_bits > 4) throw Error("bit-serial kernels take 1- to 4-bit weights");
  // Two's complement: plane p weighs 2^p, the top plane -2^p.
  std::vector<int> c;
  for (int p = 0; p < weight_bits; p++) c.push_back(p == weight_bits - 1 ? -(1 << p) : 1 << p);
  return c;
}

HalideKernel build_bitpack(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const int bits = knob(k, "bits", 1);
  const int64_t CW = (C + 31) / 32;
  ImageParam in = fixed_param(UInt(8), "input", {C, W, H, N});
  Var w("w"), j("j"), x("x"), y("y"), n("n");
  Func padded = BoundaryConditions::constant_exterior(in, u8(0), {Range(0, (int)C), Range(), Range(), Range()});
  RDom b(0, 32, "b");
  Func out("output");
  out(w, j, x, y, n) = u32(0);
  out(w, j, x, y, n) = out(w, j, x, y, n) | (u32((padded(w * 32 + b, x, y, n) >> u8(j)) & u8(1)) << u32(b));
  fix_output(out, {CW, bits, W, H, N});
  out.parallel(y);
  out.update().unroll(b, 8).parallel(y);
  return {Pipeline(out), {in}};
}

int conv2d_bitserial_channel_block(const KernelSpec &s, const Knobs &k) {
  return register_tile_channels(s.out_shape[1], k, 16);
}

HalideKernel build_conv2d_bitserial(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const int64_t M = s.out_shape[1], OH = s.out_shape[2], OW = s.out_shape[3];
  const int64_t KH = s.kernel[0], KW = s.kernel[1], CW = (C + 31) / 32;
  const int wb = knob(k, "weight_bits", 1), ab = knob(k, "activation_bits", 1);
  const std::vector<int> coef = bitserial_plane_coefficients(wb);
  const int P = (int)coef.size(), cb = conv2d_bitserial_channel_block(s, k);
  const int64_t nb = (M + cb - 1) / cb;

  ImageParam planes = fixed_param(UInt(32), "planes", {CW, ab, W, H, N});
  ImageParam weights = fixed_param(UInt(32), "weights", {cb, CW, P, KW, KH, nb});
  ImageParam bias = fixed_param(Int(32), "bias", {M});
  ImageParam mult = fixed_param(Int(32), "mult", {M});
  ImageParam shift = fixed_param(Int(32), "shift", {M});
  ImageParam residual;
  if (s.residual) residual = fixed_param(UInt(8), "residual", {M, OW, OH, N});
  ImageParam qp = fixed_param(Int(32), "qparams", {8});

  // Taps outside the image read zero bits (the input zero point is 0 on this path).
  Func padded = BoundaryConditions::constant_exterior(planes, u32(0),
                                                     {Range(), Range(), Range(0, (int)W), Range(0, (int)H), Range()});
  Var co("co"), x("x"), y("y"), n("n");
  RDom r(0, (int)CW, 0, (int)KW, 0, (int)KH, "r");
  Expr ix = x * (int)s.stride[1] + r.y * (int)s.dilation[1] - (int)s.pads[1];
  Expr iy = y * (int)s.stride[0] + r.z * (int)s.dilation[0] - (int)s.pads[0];
  // Raw popcounts accumulate per (weight plane, activation plane); the coefficients apply once
  // after the reduction.
  Expr dot = 0;
  for (int i = 0; i < P; i++)
    for (int j = 0; j < ab; j++) {
      Expr pc = i32(popcount(padded(r.x, j, ix, iy, n) & weights(co % cb, r.x, i, r.y, r.z, co / cb)));
      int c = coef[i] << j;
      dot = c == 1 ? dot + pc : (c == -1 ? dot - pc : dot + pc * c);
    }
  Func acc("acc");
  acc(co, x, y, n) = bias(co);
  acc(co, x, y, n) += dot;
  Expr total = acc(co, x, y, n);
  Func xsum("xsum");
  if (wb == 1) {
    // w = 2u - 1: sum(x * w) = 2 * sum(x * u) - sum(x); sum(x) is the same for every output
    // channel, so it is counted once per pixel.
    xsum(x, y, n) = 0;
    Expr s1 = 0;
    for (int j = 0; j < ab; j++) s1 += i32(popcount(padded(r.x, j, ix, iy, n))) << j;
    xsum(x, y, n) += s1;
    total -= xsum(x, y, n);
  }

  Expr v = requantize_fixed_point(total, mult(co), shift(co), s.rounding);
  if (s.residual)
    v += requantize_fixed_point_narrow(i32(residual(co, x, y, n)) - qp(2), qp(3), qp(4), s.rounding);
  Func out("output");
  out(co, x, y, n) = u8(clamp(v + qp(1), qp(5), qp(6)));
  fix_output(out, {M, OW, OH, N});

  // Schedule: the fp32/int8 register tile over (output channels, columns).
  int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", 16)), M);
  schedule_register_tile(out, acc, M, OW, k, 16);
  acc.update().reorder(co, x, r.x, r.y, r.z, y, n).vectorize(co, vw).unroll(co).unroll(x);
  if (wb == 1) {
    xsum.compute_root().parallel(y);
    xsum.update().reorder(x, r.x, r.y, r.z, y, n).parallel(y);
    if (OW >= 8) xsum.update().vectorize(x, 8, TailStrategy::GuardWithIf);
  }
  std::vector<Argument> args{planes, weights, bias, mult, shift};
  if (s.residual) args.push_back(residual);
  args.push_back(qp);
  return {Pipeline(out), args};
}

std::vector<KnobSpace> conv2d_bitserial_knob_spaces() {
  KnobSpace bs{"conv2d_bs", "bit-serial convolution: bit planes, AND + popcount", register_tile_knob_decls()};
  bs.knobs.push_back({"weight_bits", "weight bit planes", {}, {1, 2, 3, 4}, true, true});
  bs.knobs.push_back({"activation_bits", "activation bit planes", {}, {1, 2, 3, 4}, true, true});
  bs.normalize = [](const KernelSpec &s, Knobs k) { return register_tile_normalize(s, std::move(k), 16); };
  KnobSpace pack{"bitpack", "u8 activations to bit planes of 32 channels per word",
                 {{"bits", "bit planes written", {}, {1, 2, 3, 4}, false, true}}};
  return {bs, pack};
}

}  // namespace qnnc
