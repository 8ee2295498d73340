#include "kernels/knob_space.h"
#include "kernels/conv2d_bitserial.h"
#include "kernels/pack_bits.h"
#include "kernels/register_tile.h"
#include "kernels/requantize.h"

#include <algorithm>
#include <numeric>

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
  // Each word is the sum of its 32 channels' bits shifted to their lane: vectorized over the
  // channels, and packed from a mask register on x86 (kernels/pack_bits.h).
  Func words("words");
  words(w, j, x, y, n) = u32(0);
  words(w, j, x, y, n) += u32((padded(w * 32 + b, x, y, n) >> u8(j)) & u8(1)) << u32(b);
  out(w, j, x, y, n) = words(w, j, x, y, n);
  fix_output(out, {CW, bits, W, H, N});
  // Up to 4 words of every plane per step, unrolled (Halide 21 crashed lowering the vectorized
  // sum inside loops that were not).
  const int wt = CW % 4 == 0 ? 4 : CW % 2 == 0 ? 2 : 1;
  Var w_o("w_o"), w_i("w_i");
  out.split(w, w_o, w_i, wt).reorder(w_i, j, w_o, x, y, n).unroll(w_i).unroll(j).parallel(y);
  words.compute_at(out, w_o).unroll(w).unroll(j);
  words.update().reorder(b, w, j, x, y, n).atomic().vectorize(b).unroll(w).unroll(j);
  Pipeline p(out);
  pack_bits_as_masks(p, t);
  return {p, {in}};
}

int conv2d_bitserial_channel_block(const KernelSpec &s, const Knobs &k) {
  const int64_t M = s.out_shape[1];
  int cb = register_tile_channels(M, k, 16);
  if (knob(k, "output_bits", 0) == 0) return cb;
  // Bit-plane outputs: whole words of 32 channels per tile, dividing the channels.
  cb = std::max(32, cb / 32 * 32);
  return M % cb == 0 ? cb : 32;
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
  // Threshold epilogue (thresholds = R > 0, lowering's choice for outputs of at most 3 levels
  // and residuals of at most R levels): the output level is the number of per-channel
  // thresholds the dot product reaches, T (channel, residual level, output level - 1), with the
  // bias, the requantization, the residual and the clamp folded into them. Else bias, multiplier
  // and shift, and the requantization.
  const int R = knob(k, "thresholds", 0), L = s.qmax;
  if (R && (L < 1 || L > 3)) throw Error("conv2d_bs: thresholds need 1 to 3 output levels above 0");
  ImageParam bias, mult, shift, thr, qp;
  if (R) {
    thr = fixed_param(Int(32), "thresholds", {M, R, L});
  } else {
    bias = fixed_param(Int(32), "bias", {M});
    mult = fixed_param(Int(32), "mult", {M});
    shift = fixed_param(Int(32), "shift", {M});
  }
  // Bit planes out (output_bits > 0) and residual in (residual_bits > 0): u32 (word, plane, x,
  // y, n) words of 32 channels, as bitpack writes them; else u8 levels (c, x, y, n).
  const int ob = knob(k, "output_bits", 0), rb = knob(k, "residual_bits", 0);
  const int64_t OCW = (M + 31) / 32;
  if (ob && M % 32 != 0) throw Error("conv2d_bs: bit-plane outputs need a multiple of 32 output channels");
  ImageParam residual;
  if (s.residual && rb) residual = fixed_param(UInt(32), "residual", {OCW, rb, OW, OH, N});
  else if (s.residual) residual = fixed_param(UInt(8), "residual", {M, OW, OH, N});
  if (!R) qp = fixed_param(Int(32), "qparams", {8});

  // Taps outside the image read zero bits (the input zero point is 0 on this path).
  Func padded = BoundaryConditions::constant_exterior(planes, u32(0),
                                                     {Range(), Range(), Range(0, (int)W), Range(0, (int)H), Range()});
  Var co("co"), x("x"), y("y"), n("n");
  RDom r(0, (int)CW, 0, (int)KW, 0, (int)KH, "r");
  Expr ix = x * (int)s.stride[1] + r.y * (int)s.dilation[1] - (int)s.pads[1];
  Expr iy = y * (int)s.stride[0] + r.z * (int)s.dilation[0] - (int)s.pads[0];
  // Popcounts accumulate per (weight plane, activation plane) with their coefficients divided
  // by the coefficients' common factor g, which applies once after the reduction (W1A1: a bare
  // sum of popcounts, g = 2).
  int g = 0;
  for (int i = 0; i < P; i++)
    for (int j = 0; j < ab; j++) g = std::gcd(g, std::abs(coef[i] << j));
  Expr dot = 0;
  for (int i = 0; i < P; i++)
    for (int j = 0; j < ab; j++) {
      Expr pc = i32(popcount(padded(r.x, j, ix, iy, n) & weights(co % cb, r.x, i, r.y, r.z, co / cb)));
      int c = (coef[i] << j) / g;
      dot = c == 1 ? dot + pc : (c == -1 ? dot - pc : dot + pc * c);
    }
  Func acc("acc");
  acc(co, x, y, n) = 0;
  acc(co, x, y, n) += dot;
  Expr total = acc(co, x, y, n) * g;
  if (!R) total += bias(co);
  Func xsum("xsum"), psum("pixel_sum");
  RDom words_r(0, (int)CW, "words_r"), taps(0, (int)KW, 0, (int)KH, "taps");
  if (wb == 1) {
    // w = 2u - 1: sum(x * w) = 2 * sum(x * u) - sum(x); sum(x) is the same for every output
    // channel: each input pixel's sum once, then the window's sum of those per output pixel.
    psum(x, y, n) = 0;
    Expr s1 = 0;
    for (int j = 0; j < ab; j++) s1 += i32(popcount(planes(words_r, j, x, y, n))) << j;
    psum(x, y, n) += s1;
    Func ppad = BoundaryConditions::constant_exterior(psum, 0, {Range(0, (int)W), Range(0, (int)H), Range(0, (int)N)});
    xsum(x, y, n) = 0;
    xsum(x, y, n) += ppad(x * (int)s.stride[1] + taps.x * (int)s.dilation[1] - (int)s.pads[1],
                          y * (int)s.stride[0] + taps.y * (int)s.dilation[0] - (int)s.pads[0], n);
    total -= xsum(x, y, n);
  }

  Expr res = 0;
  if (s.residual && rb)
    for (int j = 0; j < rb; j++) res += i32((residual(co / 32, j, x, y, n) >> u32(co % 32)) & u32(1)) << j;
  else if (s.residual)
    res = i32(residual(co, x, y, n));
  Expr level;
  if (R) {
    level = threshold_level(total, res, thr, co, R, L);
  } else {
    level = requantized_level(total, mult(co), shift(co), s.residual ? res : Expr(), qp, s.rounding);
  }
  Func out("output");
  int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", 16)), M);
  if (ob == 0) {
    out(co, x, y, n) = u8(level);
    fix_output(out, {M, OW, OH, N});
    // Schedule: the fp32/int8 register tile over (output channels, columns).
    schedule_register_tile(out, acc, M, OW, OH, k, 16);
  } else {
    // The epilogue packs: bit j of each output level goes to plane j, 32 channels per word
    // (bitpack fused into the producer). The tile's levels stay in a small buffer; each word is
    // a sum of 32 lanes of (level >> j & 1) << lane, reduced across the vector.
    Func lv("level");
    lv(co, x, y, n) = level;
    Var w("w"), j("j");
    RDom b(0, 32, "b");
    Func words("words");
    words(w, j, x, y, n) = u32(0);
    words(w, j, x, y, n) += ((u32(lv(w * 32 + b, x, y, n)) >> u32(j)) & u32(1)) << u32(b);
    out(w, j, x, y, n) = words(w, j, x, y, n);
    fix_output(out, {OCW, ob, OW, OH, N});
    const int cb = conv2d_bitserial_channel_block(s, k), wb = cb / 32;
    const int xt = (int)std::min<int64_t>(std::max(1, knob(k, "x_tile", 4)), OW);
    Var w_o("w_o"), w_i("w_i"), x_o("x_o"), x_i("x_i"), t_("tile");
    out.split(w, w_o, w_i, wb, TailStrategy::ShiftInwards)
        .split(x, x_o, x_i, xt, TailStrategy::ShiftInwards)
        .reorder(w_i, j, x_i, x_o, w_o, y, n)
        .fuse(w_o, y, t_);
    parallel_tasks(out, t_, OH * (OCW / wb), k);
    words.compute_at(out, x_o).unroll(w).unroll(j).unroll(x);
    words.update().reorder(b, w, j, x, y, n).atomic().vectorize(b).unroll(w).unroll(j).unroll(x);
    lv.compute_at(out, x_o).vectorize(co, vw).unroll(co).unroll(x);
    acc.compute_at(out, x_o).vectorize(co, vw).unroll(co).unroll(x);
  }
  acc.update().reorder(co, x, r.x, r.y, r.z, y, n).vectorize(co, vw).unroll(co).unroll(x);
  if (wb == 1) {
    // Both small (a few popcounts per pixel) and serial: no second parallel loop per kernel.
    psum.compute_root();
    psum.update().reorder(words_r, x, y, n);
    if (CW >= 8) psum.update().atomic().vectorize(words_r, CW >= 16 ? 16 : 8, TailStrategy::GuardWithIf);
    xsum.compute_root();
    xsum.update().reorder(x, taps.x, taps.y, y, n);
    if (OW >= 8) xsum.update().vectorize(x, 8, TailStrategy::GuardWithIf);
  }
  std::vector<ImageParam> args{planes, weights};
  if (R) args.push_back(thr);
  else args.insert(args.end(), {bias, mult, shift});
  if (s.residual) args.push_back(residual);
  if (!R) args.push_back(qp);
  Pipeline p(out);
  if (ob) pack_bits_as_masks(p, t);  // each word from mask registers instead of a sum over lanes
  return {p, args};
}

std::vector<KnobSpace> conv2d_bitserial_knob_spaces() {
  KnobSpace bs{"conv2d_bs", "bit-serial convolution: bit planes, AND + popcount", register_tile_knob_decls()};
  bs.knobs.push_back({"weight_bits", "weight bit planes", {}, {1, 2, 3, 4}, true, true});
  bs.knobs.push_back({"activation_bits", "activation bit planes", {}, {1, 2, 3, 4}, true, true});
  bs.knobs.push_back({"output_bits", "bit planes written (0: u8 levels); set by lowering where every reader is bit-serial",
                      {}, {0, 1, 2, 3, 4}, false, true});
  bs.knobs.push_back({"thresholds", "0: requantize by multiplier; R > 0: compare with per-channel thresholds, one set per "
                      "residual level (R of them); set by lowering", {}, {0, 1, 2, 3, 4}, false, true});
  bs.knobs.push_back({"residual_bits", "bit planes of the residual read (0: u8 levels); set by lowering", {}, {0, 1, 2, 3, 4},
                      false, true});
  bs.normalize = [](const KernelSpec &s, Knobs k) { return register_tile_normalize(s, std::move(k), 16); };
  KnobSpace pack{"bitpack", "u8 activations to bit planes of 32 channels per word",
                 {{"bits", "bit planes written", {}, {1, 2, 3, 4}, false, true}}};
  return {bs, pack};
}

}  // namespace qnnc
