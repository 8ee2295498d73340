#include "kernels/knob_space.h"
#include "kernels/conv2d_q.h"
#include "kernels/register_tile.h"
#include "kernels/requantize.h"

#include <algorithm>
#include <numeric>

using namespace Halide;
using namespace Halide::ConciseCasts;

namespace qnnc {

int conv2d_q_group(const Knobs &k) { return knob(k, "group", 4) == 2 ? 2 : 4; }
int conv2d_q_weights_per_byte(const Knobs &k) {
  int p = knob(k, "weights_per_byte", 1);
  return p == 4 ? 4 : p == 2 ? 2 : 1;
}

int conv2d_q_default_weights_per_byte(const KernelSpec &s, int weight_bits, const Target &t) {
  const int packed = weight_bits <= 2 ? 4 : weight_bits <= 4 ? 2 : 1;
  // On x86 the fields are unpacked in registers (shift, and, sign extension) before each dot
  // product, and a weight vector serves one tile's columns: where a task's row holds several
  // tiles (output width >= 14) that work costs more than the weight traffic it saves. Measured
  // on Sapphire Rapids, ResNet-50 at one thread (`qnnc bench --profile`, alternating modules):
  // one weight per byte took 0.78-0.92x the time of four per byte (2-bit weights) and 0.81-0.92x
  // of two per byte (4-bit) on every layer with 56, 28 or 14 output columns; at 7 columns the
  // packed weights were as fast or faster (2-bit: 0.86-1.0x one per byte's time).
  if (t.arch == Target::X86 && s.out_shape.size() == 4 && s.out_shape[3] >= 14) return 1;
  return packed;
}

int conv2d_q_channel_block(const KernelSpec &s, const Knobs &k) { return register_tile_channels(s.out_shape[1], k, 16); }

ConvQFuncs define_conv2d_q(const KernelSpec &s, int cb) {
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const int64_t M = s.out_shape[1], OH = s.out_shape[2], OW = s.out_shape[3];
  // Input channels per dot-product group (4 for vpdpbusd/sdot, 2 for vpmaddwd), and weights
  // per byte (1; 2 for 3-4 bit weights; 4 for 1-2 bit weights): one byte holds the weights of
  // `per` consecutive groups.
  const int g = conv2d_q_group(s.knobs), per = conv2d_q_weights_per_byte(s.knobs);
  const int64_t span = (int64_t)per * g, C4 = (C + span - 1) / span * per;
  const int64_t KH = s.kernel[0], KW = s.kernel[1], nb = (M + cb - 1) / cb;
  ConvQFuncs f;
  f.per_byte = per;
  f.padded_channels = C4 * g;
  f.input = fixed_param(UInt(8), "input", {C, W, H, N});
  if (per > 1) f.weights = fixed_param(UInt(8), "weights", {g, cb, C4 / per, KW, KH, nb});
  else f.weights = fixed_param(Int(8), "weights", {g, cb, C4, KW, KH, nb});
  f.bias = fixed_param(Int(32), "bias", {M});
  f.thresholds = knob(s.knobs, "thresholds", 0);
  if (f.thresholds) {
    if (s.qmax < 1 || s.qmax > 3) throw Error("conv2d_q: thresholds need 1 to 3 output levels above 0");
    f.thr = fixed_param(Int(32), "thresholds", {M, f.thresholds, s.qmax});
  } else {
    f.mult = fixed_param(Int(32), "mult", {M});
    f.shift = fixed_param(Int(32), "shift", {M});
  }
  if (s.residual) f.residual = fixed_param(UInt(8), "residual", {M, OW, OH, N});
  f.qparams = fixed_param(Int(32), "qparams", {8});

  Var c("c"), x("x"), y("y"), n("n");
  bool spatial_pad = s.pads[0] || s.pads[1] || s.pads[2] || s.pads[3];
  f.has_padding = spatial_pad || C % span != 0;
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
  RDom r(0, g, 0, (int)C4, 0, (int)KW, 0, (int)KH, "r");
  Expr ix = x * (int)s.stride[1] + r.z * (int)s.dilation[1] - (int)s.pads[1];
  Expr iy = y * (int)s.stride[0] + r.w * (int)s.dilation[0] - (int)s.pads[0];
  f.acc = Func("acc");
  f.acc(co, x, y, n) = f.bias(co);
  // signed_input: ARM's dot products multiply i8 by i8, so activations enter as x - 128 (a flip
  // of the top bit) and the bias carries + 128 * sum(w); the integers are the same.
  Expr xin = f.padded(r.y * g + r.x, ix, iy, n);
  if (knob(s.knobs, "signed_input", 0)) xin = reinterpret(Int(8), xin ^ u8(128));
  Expr wv;
  if (per > 1) {
    // Group j of a byte sits in bits [j * fb, (j + 1) * fb), two's complement: ((v ^ h) - h)
    // with h = 2^(fb-1) sign-extends a field v. The schedule unrolls r.y by `per`, so each
    // field's shift is a constant.
    const int fb = 8 / per;
    Expr b = f.weights(r.x, co % cb, r.y / per, r.z, r.w, co / cb);
    Expr field = (b >> u8((r.y % per) * fb)) & u8((1 << fb) - 1);
    wv = i8(field ^ u8(1 << (fb - 1))) - i8(1 << (fb - 1));
  } else {
    wv = f.weights(r.x, co % cb, r.y, r.z, r.w, co / cb);
  }
  f.acc(co, x, y, n) += i32(xin) * i32(wv);

  f.output = Func("output");
  if (f.thresholds) {
    Expr res = s.residual ? i32(f.residual(co, x, y, n)) : Expr(0);
    f.output(co, x, y, n) = u8(threshold_level(f.acc(co, x, y, n), res, f.thr, co, f.thresholds, s.qmax));
  } else {
    Expr res = s.residual ? f.residual(co, x, y, n) : Expr();
    f.output(co, x, y, n) = u8(requantized_level(f.acc(co, x, y, n), f.mult(co), f.shift(co), res, f.qparams, s.rounding));
  }
  fix_output(f.output, {M, OW, OH, N});
  f.r = r;
  return f;
}

Knobs conv2d_q_default_knobs(const KernelSpec &s, const Target &t) {
  // i32 lanes per vector; the same register tile as the fp32 convolution. Row by row when the
  // weights are small: MobileNetV2 int8 at 2 threads 2.33 -> 1.98 ms (1 thread unchanged). The
  // fp32 convolution keeps block by block: row by row made MnasNet fp32 15-25% slower.
  Knobs k = register_tile_knobs(s.out_shape[1], s.out_shape[3], t.natural_vector_size<int32_t>(), t,
                                1 * s.out_shape[1] * s.in_shape[1] * s.kernel[0] * s.kernel[1]);
  k["signed_input"] = t.arch == Target::ARM ? 1 : 0;
  // x86 without a u8 x i8 dot product (no VNNI): pairs of channels, widened to 16 bits, meet
  // vpmaddwd directly; groups of 4 would need horizontal adds after it.
  k["group"] = t.arch == Target::X86 && !x86_has_u8_dot(t) ? 2 : 4;
  // On x86, 4 vectors lose their dense weight loads: Halide loads the weights of the first
  // vectors as one wide vector and slices it, and where the 4th would widen it to 4 x 64 bytes
  // it gathers byte by byte instead. With vpmaddwd (groups of 2), 3 vectors measured fastest on
  // ResNet-50 (131 ms against 213 ms for 2 and 243 ms for 4); with vpdpbusd, the layers that
  // took 4 (a row of one column: dense layers, squeeze-and-excitation) ran 4-5x slower than
  // with 3 (AlexNet int8, 9216 -> 4096: 7.1 -> 1.5 ms, `qnnc bench --profile`).
  if (t.arch == Target::X86) k["co_vectors"] = std::min(k["co_vectors"], 3);
  // On ARM, output channels that the vectors do not divide (16 or more; fewer take one vector of
  // all of them) would leave a last vector shifted inward across two blocks of packed weights,
  // which Halide 21's ARM back end refuses for the dot-product loads ("Should be dense vector
  // load"; RegNet-Y-3.2GF's 72 -> 18 and 72 -> 30 squeeze-and-excitation layers). Vectors of the
  // largest width that divides them instead: these are small layers.
  const int64_t M = s.out_shape[1];
  if (t.arch == Target::ARM && M % k["vec"] != 0) {
    k["vec"] = (int)std::gcd<int64_t>(M, k["vec"]);
    k["co_vectors"] = 1;
  }
  return k;
}

void schedule_conv2d_q(ConvQFuncs &f, const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t M = s.out_shape[1], OW = s.out_shape[3];
  int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", 16)), M);
  schedule_register_tile(f.output, f.acc, M, OW, s.out_shape[2], k, 16);
  Var cv = f.acc.args()[0], xv = f.acc.args()[1], yv = f.acc.args()[2], nv = f.acc.args()[3];
  // Innermost: the g input channels of one dot product, then the register tile (with packed
  // weights, the `per_byte` groups of one byte unrolled inside it).
  if (f.per_byte > 1) {
    RVar ryo("ryo"), ryi("ryi");
    f.acc.update()
        .split(f.r.y, ryo, ryi, f.per_byte)
        .reorder(f.r.x, cv, xv, ryi, ryo, f.r.z, f.r.w, yv, nv)
        .unroll(ryi);
  } else {
    f.acc.update().reorder(f.r.x, cv, xv, f.r.y, f.r.z, f.r.w, yv, nv);
  }
  f.acc.update()
      .atomic()
      .vectorize(f.r.x)
      .vectorize(cv, vw)
      .unroll(cv)
      .unroll(xv);
  if (f.has_padding) {
    Var pc = f.padded.args()[0], py = f.padded.args()[2];
    f.padded.compute_root().parallel(py);
    if (s.in_shape[1] >= 64) {
      f.padded.vectorize(pc, 64, TailStrategy::GuardWithIf);
    } else if (s.in_shape[1] <= 4 && s.in_shape[3] >= 16) {
      schedule_image_columns(f.padded, f.padded_channels);  // the padded group of g channels
    }
  }
}

KnobSpace conv2d_q_knob_space() {
  KnobSpace s{"conv2d_q", "integer convolution: u8 x i8 dot products, i32 accumulators, fixed-point requantization",
              register_tile_knob_decls()};
  s.knobs.push_back({"group", "input channels per dot-product group (4: vpdpbusd/sdot; 2: vpmaddwd)", {}, {2, 4}, true});
  s.knobs.push_back({"weights_per_byte", "weights stored per byte (2 or 4 for 4- or 2-bit weights)", {}, {1, 2, 4}, true});
  s.knobs.push_back({"signed_input", "activations shifted to i8 (ARM sdot)", {}, {0, 1}, false, true});
  s.knobs.push_back({"bitserial", "run 1-4 bit layers on the bit-serial kernel instead", {}, {0, 1}, true, true});
  s.knobs.push_back({"thresholds", "0: requantize by multiplier; R > 0: compare with per-channel thresholds, one set per "
                     "residual level (R of them); set by lowering for outputs of 1-2 bits", {}, {0, 1, 2, 3, 4}, false, true});
  s.normalize = [](const KernelSpec &s, Knobs k) { return register_tile_normalize(s, std::move(k), 16); };
  return s;
}

}  // namespace qnnc
