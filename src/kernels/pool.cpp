// Pooling kernels: windowed max and global average.
#include "kernels/knob_space.h"
#include <algorithm>
#include <limits>

#include "kernels/families.h"

using namespace Halide;
using namespace Halide::ConciseCasts;

namespace qnnc {

HalideKernel build_maxpool(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const int64_t OH = s.out_shape[2], OW = s.out_shape[3];
  // u8 tensors pool their integers (the pad value 0 is their smallest level).
  bool q = s.dtype == "u8";
  ImageParam in = fixed_param(q ? UInt(8) : Float(32), "input", {C, W, H, N});
  Expr lowest = q ? Expr((uint8_t)0) : Expr(-std::numeric_limits<float>::infinity());
  Func padded = BoundaryConditions::constant_exterior(in, lowest, {Range(), Range(0, (int)W), Range(0, (int)H), Range()});
  Var c("c"), x("x"), y("y"), n("n");
  const int KH = (int)s.kernel[0], KW = (int)s.kernel[1];
  auto tap = [&](Expr kx, Expr ky) {
    return padded(c, x * (int)s.stride[1] + kx - (int)s.pads[1], y * (int)s.stride[0] + ky - (int)s.pads[0], n);
  };
  Func out("output");
  if (KH * KW <= 25) {
    // The window written out: one max per tap, no reduction loop.
    Expr m;
    for (int ky = 0; ky < KH; ky++)
      for (int kx = 0; kx < KW; kx++) m = m.defined() ? max(m, tap(kx, ky)) : tap(kx, ky);
    out(c, x, y, n) = m;
  } else {
    RDom r(0, KW, 0, KH, "r");
    out(c, x, y, n) = maximum(tap(r.x, r.y));
  }
  fix_output(out, {C, OW, OH, N});
  // Channels in the vector lanes: the widest power of two up to `vec` that the channels fill
  // (24 u8 channels: 16 lanes, the second vector shifted inward over lanes 8-23), so that few
  // channels (ShuffleNet's 24) do not fall back to scalar code.
  int vw = std::max(1, knob(k, "vec", 8));
  while (vw > 1 && vw > C) vw /= 2;
  if (vw > 1) out.vectorize(c, vw, C % vw == 0 ? TailStrategy::RoundUp : TailStrategy::ShiftInwards);
  out.parallel(y);
  return {Pipeline(out), {in}};
}

HalideKernel build_global_avgpool(const KernelSpec &s, const Knobs &k, const Target &t) {
  // fp32 input, or u8 (global_avgpool_q) averaged as integers and dequantized in the same step:
  // (sum(q) - H*W*zp) * scale / (H*W).
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const bool q = s.dtype == "u8";
  ImageParam in = fixed_param(q ? UInt(8) : Float(32), "input", {C, W, H, N});
  Var c("c"), x("x"), y("y"), n("n");
  RDom r(0, (int)W, 0, (int)H, "r");
  Func sum("sum"), out("output");
  if (q) {
    sum(c, n) = 0;
    sum(c, n) += i32(in(c, r.x, r.y, n));
    out(c, x, y, n) = f32(sum(c, n) - (int)(H * W) * s.zero_point) * (s.scale / float(H * W));
  } else {
    sum(c, n) = 0.f;
    sum(c, n) += in(c, r.x, r.y, n);
    out(c, x, y, n) = sum(c, n) * (1.0f / float(H * W));
  }
  fix_output(out, {C, 1, 1, N});
  int vec = knob(k, "vec", 8);
  if (C >= vec) {
    Var co("co"), ci("ci");
    out.split(c, co, ci, vec, TailStrategy::GuardWithIf).vectorize(ci).parallel(co);
    sum.compute_at(out, co).vectorize(c, vec, TailStrategy::GuardWithIf);
    sum.update().reorder(c, r.x, r.y).vectorize(c, vec, TailStrategy::GuardWithIf);
  }
  return {Pipeline(out), {in}};
}

}  // namespace qnnc

namespace qnnc {

HalideKernel build_avgpool(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const int64_t OH = s.out_shape[2], OW = s.out_shape[3];
  const int KH = (int)s.kernel[0], KW = (int)s.kernel[1], SH = (int)s.stride[0], SW = (int)s.stride[1];
  const int PT = (int)s.pads[0], PL = (int)s.pads[1], PB = (int)s.pads[2], PR = (int)s.pads[3];
  ImageParam in = fixed_param(Float(32), "input", {C, W, H, N});
  Func padded = BoundaryConditions::constant_exterior(in, 0.f, {Range(), Range(0, (int)W), Range(0, (int)H), Range()});
  Var c("c"), x("x"), y("y"), n("n");
  RDom r(0, KW, 0, KH, "r");
  Func sum("sum"), out("output");
  sum(c, x, y, n) = 0.f;
  sum(c, x, y, n) += padded(c, x * SW + r.x - PL, y * SH + r.y - PT, n);
  // Taps counted: inside the padded input (include_pad; a ceil_mode window may still reach past
  // it) or inside the input itself.
  Expr hs = y * SH - PT, ws = x * SW - PL;
  Expr he, we;
  if (s.fn == "count_include_pad") {
    he = min(hs + KH, (int)H + PB);
    we = min(ws + KW, (int)W + PR);
  } else {
    he = min(hs + KH, (int)H);
    we = min(ws + KW, (int)W);
    hs = max(hs, 0);
    ws = max(ws, 0);
  }
  Expr count = max((he - hs) * (we - ws), 1);
  out(c, x, y, n) = sum(c, x, y, n) / f32(count);
  fix_output(out, {C, OW, OH, N});
  int vec = knob(k, "vec", 8);
  if (C >= vec) {
    Var co("co"), ci("ci");
    out.split(c, co, ci, vec, TailStrategy::GuardWithIf).vectorize(ci);
    sum.compute_at(out, co).vectorize(c, vec, TailStrategy::GuardWithIf);
    sum.update().reorder(c, r.x, r.y).vectorize(c, vec, TailStrategy::GuardWithIf);
  }
  out.parallel(y);
  return {Pipeline(out), {in}};
}

std::vector<KnobSpace> pool_knob_spaces() {
  KnobDecl vec{"vec", "lanes per vector of channels", {8, 16, 32}, {}};
  KnobDecl max_vec{"vec", "lanes per vector of channels", {8, 16, 32, 64}, {}};
  return {{"maxpool", "windowed max", {max_vec}},
          {"avgpool", "windowed mean", {vec}},
          {"global_avgpool", "mean over H and W", {vec}},
          {"global_avgpool_q", "mean over H and W of u8 activations", {vec}}};
}

}  // namespace qnnc
