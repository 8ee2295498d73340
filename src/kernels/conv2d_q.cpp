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

int conv2d_q_channel_block(const KernelSpec &s, const Knobs &k) {
  if (knob(k, "amx", 0)) return 16;  // one tile's columns: each B tile is 1 kB in one piece
  if (knob(k, "flat_weights", 0)) return (int)s.out_shape[1];
  return register_tile_channels(s.out_shape[1], k, 16);
}

namespace {
// The vector path over one i8 weight per byte and u8 activations (no AMX), on an image: where
// wide_input and madd_u8 apply, with groups of 2 and of 4 channels.
bool u8_bytes_vector_path(const KernelSpec &s, const Knobs &k) {
  return conv2d_q_weights_per_byte(k) == 1 && !knob(k, "amx", 0) && !knob(k, "signed_input", 0) &&
         s.in_shape.size() == 4;
}
}  // namespace

bool conv2d_q_wide_input(const KernelSpec &s, const Knobs &k) {
  return knob(k, "wide_input", 0) && conv2d_q_group(k) == 2 && u8_bytes_vector_path(s, k);
}

bool conv2d_q_madd_u8(const KernelSpec &s, const Knobs &k) {
  return knob(k, "madd_u8", 0) && conv2d_q_group(k) == 4 && u8_bytes_vector_path(s, k);
}

bool conv2d_q_amx_flat(const KernelSpec &s, const Knobs &k) {
  return knob(k, "amx", 0) && pointwise_same_size(s) && s.in_shape[1] % 4 == 0;
}

bool conv2d_q_pixel_row(const KernelSpec &s, const Knobs &k) {
  return knob(k, "pixel_row", 0) && !knob(k, "amx", 0) && pointwise_same_size(s);
}

bool conv2d_q_as_row(const KernelSpec &s, const Knobs &k) { return conv2d_q_amx_flat(s, k) || conv2d_q_pixel_row(s, k); }

bool conv2d_q_amx_padded_rows(const KernelSpec &s, const Knobs &k) {
  return knob(k, "amx", 0) && s.in_shape.size() == 4 && !conv2d_q_amx_flat(s, k) &&
         s.stride == std::vector<int64_t>{1, 1} && s.out_shape[3] < 14 &&
         (s.in_shape[3] + s.pads[1] + s.pads[3]) * (s.out_shape[2] - 1) + s.out_shape[3] >= 16;
}

ConvQFuncs define_conv2d_q(const KernelSpec &spec, int cb) {
  const KernelSpec s = conv2d_q_as_row(spec, spec.knobs) ? pixels_as_row(spec) : spec;
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
  // AMX reads the weights, packed in blocks of 16 output channels, as (g, 16, C4 KW KH M/16):
  // the taps and the channel block folded into the channel groups. Halide 21 recognizes a tile
  // product only where the weights' offset along that dimension is (group index) * stride, which
  // a constant stride would let the simplifier distribute: the stride stays a run-time value.
  const bool amx = knob(s.knobs, "amx", 0) != 0;
  if (amx) {
    f.weights = ImageParam(Int(8), 3, "weights");
    f.weights.dim(0).set_min(0).set_extent(g).set_stride(1);
    f.weights.dim(1).set_min(0).set_extent(16).set_stride(g);
    f.weights.dim(2).set_min(0).set_extent((int)(C4 * KW * KH * (M / 16)));
  } else if (per > 1) {
    f.weights = fixed_param(UInt(8), "weights", {g, cb, C4 / per, KW, KH, nb});
  } else {
    f.weights = fixed_param(Int(8), "weights", {g, cb, C4, KW, KH, nb});
  }
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
  // AMX tiles always compute 16 columns: narrower outputs read past the input's edge.
  f.padded_rows = conv2d_q_amx_padded_rows(s, s.knobs);
  f.wide_input = conv2d_q_wide_input(s, s.knobs);
  const bool bordered = spatial_pad || C % span != 0 || (amx && OW < 16) || f.padded_rows;
  f.has_padding = bordered || f.wide_input;  // the copy is made for either
  f.padded = Func("padded");
  Expr in_value = f.input(c, x, y, n);
  if (bordered) {
    // Out-of-range taps read the input zero point (the bias carries the matching correction);
    // channels past C meet zero weights.
    in_value = BoundaryConditions::constant_exterior(
        f.input, u8(f.qparams(0)), {Range(0, (int)C), Range(0, (int)W), Range(0, (int)H), Range()})(c, x, y, n);
  }
  // wide_input: the copy widened to i16 once, so that a reduction step broadcasts a channel
  // pair with one 32-bit load instead of widening it again for every tile.
  f.padded(c, x, y, n) = f.wide_input ? i16(in_value) : in_value;

  Var co("co");
  f.madd_u8 = conv2d_q_madd_u8(s, s.knobs);  // (never with AMX, so never with padded rows)
  RDom r(0, f.madd_u8 ? 2 : g, 0, (int)C4, 0, (int)KW, 0, (int)KH, "r");
  if (amx && (per != 1 || g != 4 || knob(s.knobs, "signed_input", 0)))
    throw Error("conv2d_q: amx needs one i8 weight per byte in groups of 4 and u8 activations");
  // An output channel's place in the packed weights; one block of all channels (cb >= M)
  // needs no division, so a vector at any channel offset reads them densely.
  const Expr wco = nb == 1 ? Expr(co) : co % cb, wblk = nb == 1 ? Expr(0) : co / cb;
  Expr wv;
  if (per > 1) {
    // Group j of a byte sits in bits [j * fb, (j + 1) * fb), two's complement: ((v ^ h) - h)
    // with h = 2^(fb-1) sign-extends a field v. The schedule unrolls r.y by `per`, so each
    // field's shift is a constant.
    const int fb = 8 / per;
    Expr b = f.weights(r.x, wco, r.y / per, r.z, r.w, wblk);
    Expr field = (b >> u8((r.y % per) * fb)) & u8((1 << fb) - 1);
    wv = i8(field ^ u8(1 << (fb - 1))) - i8(1 << (fb - 1));
  } else if (amx) {
    wv = f.weights(r.x, co % 16, r.y + (int)C4 * (r.z + (int)KW * r.w) + (int)(C4 * KW * KH) * (co / 16));
  } else {
    wv = f.weights(r.x, wco, r.y, r.z, r.w, wblk);
  }
  // On AMX the accumulator tile starts from zero (tilezero) and the bias joins in the epilogue.
  f.acc = Func("acc");
  Expr sum;
  if (f.padded_rows) {
    // The padded image as one row: pixel q is (q % Wp - pad_left, q / Wp - pad_top); output
    // pixel (x, y) is p = x + Wp y, and tap (kx, ky) reads p + kx + Wp ky.
    const int64_t Wp = W + s.pads[1] + s.pads[3];
    Var q("q"), p("p");
    f.padded_row = Func("padded_row");
    f.padded_row(c, q, n) = f.padded(c, q % (int)Wp - (int)s.pads[1], q / (int)Wp - (int)s.pads[0], n);
    Expr tap = r.z * (int)s.dilation[1] + (int)Wp * (r.w * (int)s.dilation[0]);
    f.acc(co, p, n) = 0;
    f.acc(co, p, n) += i32(f.padded_row(r.y * g + r.x, p + tap, n)) * i32(wv);
    sum = f.acc(co, x + (int)Wp * y, n) + f.bias(co);
  } else {
    // The input column and row that output (x, y) reads at tap (kx, ky).
    auto in_x = [&](Expr kx) { return x * (int)s.stride[1] + kx * (int)s.dilation[1] - (int)s.pads[1]; };
    auto in_y = [&](Expr ky) { return y * (int)s.stride[0] + ky * (int)s.dilation[0] - (int)s.pads[0]; };
    Expr ix = in_x(r.z), iy = in_y(r.w);
    // signed_input: ARM's dot products multiply i8 by i8, so activations enter as x - 128 (a
    // flip of the top bit) and the bias carries + 128 * sum(w); the integers are the same.
    Expr xin = f.padded(r.y * g + r.x, ix, iy, n);
    if (knob(s.knobs, "signed_input", 0)) xin = reinterpret(Int(8), xin ^ u8(128));
    f.acc(co, x, y, n) = amx ? Expr(0) : f.bias(co);
    if (f.madd_u8) {
      // Channel 2 q + rp of group c4 at tap (kx, ky); the pair's sum is at most 255 * 64 * 2
      // in magnitude for weights within [-64, 63], so the saturating add never saturates.
      Var q("q"), c4("c4"), kx("kx"), ky("ky");
      f.rp = RDom(0, 2, "rp");
      Expr k = 2 * q + f.rp;
      f.pair = Func("pair");
      f.pair(q, co, x, y, n, c4, kx, ky) = i16(0);
      f.pair(q, co, x, y, n, c4, kx, ky) =
          saturating_add(f.pair(q, co, x, y, n, c4, kx, ky),
                         i16(f.padded(c4 * g + k, in_x(kx), in_y(ky), n)) * i16(f.weights(k, wco, c4, kx, ky, wblk)));
      f.acc(co, x, y, n) += i32(f.pair(r.x, co, x, y, n, r.y, r.z, r.w));
    } else {
      f.acc(co, x, y, n) += f.wide_input ? i32(xin) * i32(i16(wv)) : i32(xin) * i32(wv);
    }
    sum = amx ? f.acc(co, x, y, n) + f.bias(co) : f.acc(co, x, y, n);
  }

  f.output = Func("output");
  if (f.thresholds) {
    Expr res = s.residual ? i32(f.residual(co, x, y, n)) : Expr(0);
    f.output(co, x, y, n) = u8(threshold_level(sum, res, f.thr, co, f.thresholds, s.qmax));
  } else {
    Expr res = s.residual ? f.residual(co, x, y, n) : Expr();
    f.output(co, x, y, n) = u8(requantized_level(sum, f.mult(co), f.shift(co), res, f.qparams, s.rounding));
  }
  fix_output(f.output, {M, OW, OH, N});
  f.r = r;
  return f;
}

namespace {

// Input channels (a multiple of 4, at most 64: one tile row's bytes) per tile product: the
// largest that divides the reduction's padded channels.
int amx_channel_chunk(int64_t padded_channels) {
  for (int k = 64; k >= 4; k -= 4)
    if (padded_channels % k == 0) return k;
  return 4;
}

// The layer's side of conv2d_q_amx_unfit (the target's is not known to KnobSpace::normalize).
std::string amx_shape_unfit(const KernelSpec &s, const Knobs &k) {
  if (s.out_shape.size() != 4 || s.group != 1) return "not a dense 2-D convolution";
  if (conv2d_q_weights_per_byte(k) != 1) return "weights stored several per byte";
  if (conv2d_q_group(k) != 4 || knob(k, "signed_input", 0)) return "not u8 x i8 in groups of 4 channels";
  if (s.out_shape[1] % 16 != 0) return "output channels not a multiple of 16";
  const int64_t padded = (s.in_shape[1] + 3) / 4 * 4;
  if (amx_channel_chunk(padded) < 16) return "fewer than 16 input channels per tile product";
  return "";
}

}  // namespace

std::string conv2d_q_amx_unfit(const KernelSpec &s, const Knobs &k, const Target &t) {
  if (t.arch != Target::X86 || !t.has_feature(Target::AVX512_SapphireRapids))
    return "the target has no AMX (x86 with avx512_sapphirerapids)";
  return amx_shape_unfit(s, k);
}

namespace {

// Output channels that the general rule tiles with one vector (64 or more on VNNI x86): those
// that 16 does not divide (RegNet's 168, 216, 408, 1512), where a wider tile would leave a
// shifted last block whose weights straddle two packed blocks (gathered), and those that come
// in an odd number of vectors (80, 144, 240, 720), which 2 vectors do not divide. One vector by
// 7-8 columns loads a weight vector and up to 8 broadcasts for 7-8 dot products. Instead, a
// tile of 3 or 2 vectors (whichever computes fewer channels past the end) by 7 or 8 columns;
// where it does not divide the channels, the last block shifted inward over weights packed as
// one block of all channels (flat_weights), so that a tile at any channel offset loads its
// weights densely.
void odd_channel_tile(const KernelSpec &s, const Target &t, Knobs &k) {
  const int64_t M = s.out_shape[1], OW = s.out_shape[3];
  // (Not for the bit-serial kernel, which shares these defaults but packs its weights in blocks.)
  if (s.kind != "conv2d_q" || !x86_has_u8_dot(t) || s.in_shape.size() != 4 || M < 64 || OW < 4 || k["vec"] != 16) return;
  if (M % 16 == 0 && k["co_vectors"] > 1) return;
  const auto [cv, xt] = shifted_block_tile(M, OW);
  k["co_vectors"] = cv;
  k["x_tile"] = xt;
  if (M % (16 * cv) != 0) {
    k["flat_weights"] = 1;
    k["row_major"] = 0;
  }
}

}  // namespace

Knobs conv2d_q_default_knobs(const KernelSpec &s, const Target &t) {
  // i32 lanes per vector; the same register tile as the fp32 convolution. Row by row when the
  // weights are small: MobileNetV2 int8 at 2 threads 2.33 -> 1.98 ms (1 thread unchanged). The
  // fp32 convolution keeps block by block: row by row made MnasNet fp32 15-25% slower.
  // On x86, 4 vectors lose their dense weight loads: Halide loads the weights of the first
  // vectors as one wide vector and slices it, and where the 4th would widen it to 4 x 64 bytes
  // it gathers byte by byte instead. With vpmaddwd (groups of 2), 3 vectors measured fastest on
  // ResNet-50 (131 ms against 213 ms for 2 and 243 ms for 4); with vpdpbusd, the layers that
  // took 4 (a row of one column: dense layers, squeeze-and-excitation) ran 4-5x slower than
  // with 3 (AlexNet int8, 9216 -> 4096: 7.1 -> 1.5 ms, `qnnc bench --profile`).
  // The cap is the tile rule's own bound, so the vectors still divide the channels where they
  // can: applied after the rule, 3 of 8 lanes over 256 or 1024 channels (ResNet-50's 14x14 1x1
  // layers on AVX2, where the rule gave 4 by 2 columns) left a last block across two packed
  // blocks, its weights gathered byte by byte: those layers ran at 4% of the int8 peak and the
  // model took 239 ms at one thread against 101 ms with 2 vectors (AMD EPYC Zen 3, `qnnc bench`,
  // 10 runs, 2026-12-07).
  // x86 without a u8 dot product (vpmaddwd on pairs): at most 2 vectors. 3 vectors by 4 columns
  // (12 accumulators, 3 widened weight vectors and a broadcast: all 16 registers) spill there:
  // ConvNeXt-Tiny int8's 1x1 layers (96-3072 channels, which 3 vectors of 8 divide) took
  // 0.62-0.75x their time with 2 (AMD EPYC Zen 3, `qnnc bench --profile`, 2026-12-07).
  const int max_vectors = t.arch != Target::X86 ? 64 : x86_has_u8_dot(t) ? 3 : 2;
  const int64_t weight_bytes = s.out_shape[1] * s.in_shape[1] * s.kernel[0] * s.kernel[1];  // one per byte
  Knobs k = register_tile_knobs(s.out_shape[1], s.out_shape[3], t.natural_vector_size<int32_t>(), t, weight_bytes,
                                max_vectors, s.kind == "conv2d_bs");
  k["signed_input"] = t.arch == Target::ARM ? 1 : 0;
  // x86 without a u8 x i8 dot product (no VNNI): pairs of channels, widened to 16 bits, meet
  // vpmaddwd directly; groups of 4 would need horizontal adds after it.
  k["group"] = t.arch == Target::X86 && !x86_has_u8_dot(t) ? 2 : 4;
  // With pairs, the input widened to i16 once: a reduction step then broadcasts a pair with one
  // 32-bit load, where widening it in place took a load, a zero-extension and a broadcast per
  // column of every tile. ResNet-50 int8 on AVX2 (AMD EPYC Zen 3, `qnnc bench`, 10 runs):
  // 94.9 -> 66.6 ms at one thread, 47.6 -> 33.2 at two, every conv2d_q layer 0.63-0.77x its
  // time (`--profile`), outputs identical; wider tiles (3 x 4, 2 x 6, 4 x 3) were slower.
  if (s.kind == "conv2d_q") k["wide_input"] = k["group"] == 2 ? 1 : 0;
  // With vpdpbusd, 64 output channels per tile as 2 vectors of 32 lanes (their 4 registers of
  // weights load densely, where 4 vectors of 16 gathered) by 4 or 5 columns, whichever computes
  // fewer columns past the row's end. Measured on Ice Lake, ResNet-50 int8 at one thread
  // (`qnnc bench --profile`, per-layer minimum of 4 alternating rounds, against 2 vectors of
  // 16 x 7-8 columns): 3x3 layers 0.85-0.91x their time at 56 and 28 columns with 4 columns,
  // 0.87-0.89x at 14 with 5; 1x1 layers 0.88-1.0x; at 7 columns 4 or 5 were slower than 2 x 7
  // (8 or 10 columns computed), so those keep it; so do reductions under 128 (MobileNetV2's
  // 1x1 expansions from 32-96 channels took 1.0-1.08x their time with it: short reductions are
  // bound by the epilogue). The tuner found the same shape (vec 32).
  const int64_t OW = s.out_shape.size() == 4 ? s.out_shape[3] : 1;
  const int64_t reduction = s.in_shape.size() == 4 ? s.in_shape[1] * s.kernel[0] * s.kernel[1] : 0;
  if (x86_has_u8_dot(t) && k["vec"] == 16 && s.out_shape[1] % 64 == 0 && OW >= 8 && reduction >= 128) {
    k["vec"] = 32;
    k["co_vectors"] = 2;
    auto covered = [&](int c) { return (OW + c - 1) / c * c; };
    k["x_tile"] = covered(5) < covered(4) ? 5 : 4;
  }
  odd_channel_tile(s, t, k);
  // Pairs (x86 AVX2), int8 at one thread (AMD EPYC Zen 3, bench/compare_layers.py, 4 rounds), 2 x 4
  // against 1 x 4: ShuffleNetV2's 1x1 layers over 58, 116 and 232 channels 0.45-0.70x their time,
  // RegNet-Y-1.6GF's over 120 0.66-0.89x, MobileNetV3-Large's 184 and 200 0.67-0.95x, 72 (80
  // computed) 0.96-1.03x; 24 (32 computed) took 1.06-1.15x and 40 (48) 0.76-1.22x, hence at most
  // an eighth computed past the end.
  if (s.kind == "conv2d_q" && k["group"] == 2 && s.in_shape.size() == 4)
    avx2_shifted_pair_tile(s.out_shape[1], OW, weight_bytes, 0.125, t, k);
  // x86 without AVX-512: a 1x1 stride-1 layer whose rows the tile's columns do not divide (14
  // by 4: the last tile of each row shifted inward, 16 columns computed for 14) runs its
  // tiles over the pixels as one row (196 = 49 x 4). RegNet-X-3.2GF at one thread, w7a8 (AMD
  // EPYC Zen 3, bench/compare_layers.py, 5 rounds): its 14x14 1x1 layers 0.82-0.89x their time;
  // rows that the tile divides (28, 56) took 1.01-1.12x (the runs go block by block, where
  // those rows went row by row), so they keep their rows.
  if (s.kind == "conv2d_q") avx2_pixel_row_where_rows_leave_columns(s, t, k);
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
  // Sapphire Rapids: AMX tiles where the layer fits them and they pay. Measured on ResNet-50
  // int8 at one thread (`qnnc bench --profile`, 3 alternating rounds, AMX time / vector time):
  // 3x3 layers 0.57-0.69 with image rows as tiles (0.91-0.95 for stride 2 into 7 columns) and
  // 0.47-0.50 through padded rows at 7x7 (conv2d_q_amx_padded_rows); 1x1 layers in image rows
  // (stride 2) 0.79-0.90 into 28 or 56 columns but 1.20 into 7 (16 columns computed, 7 kept);
  // 1x1 stride-1 layers with pixels as one row (conv2d_q_amx_flat) reducing 256-2048 channels
  // 0.62-0.76, expanding 0.85-1.06 (the epilogue dominates), 64 -> 64 1.28 (one tile product
  // per 256 outputs). Fewer pixels than a tile's 16 rows (dense layers, squeeze-and-excitation)
  // stay on vectors.
  if (s.kind == "conv2d_q" && t.arch == Target::X86 && t.has_feature(Target::AVX512_SapphireRapids)) {
    Knobs probe = k;
    for (const auto &[name, v] : s.knobs) probe[name] = v;
    probe["amx"] = 1;
    const int64_t C = s.in_shape[1], M = s.out_shape[1], OW = s.out_shape[3];
    const bool pays = conv2d_q_amx_flat(s, probe) ? C * M >= 64 * 256 && s.out_shape[2] * OW >= 16
                                                  : s.kernel[0] * s.kernel[1] > 1 || (C >= 128 && OW >= 14);
    if (pays && conv2d_q_amx_unfit(s, probe, t).empty()) k["amx"] = 1;
  }
  return k;
}

namespace {

// The reduction of acc (co, pixels, ...) as one tile product (tdpbusd) per step: its pure
// dimensions are the tile (16 output channels, 64 bytes of i32, by 16 pixels), the innermost
// `chunk` input channels its depth (the A tile's rows are the pixels' activations, the B tile
// the weights of those channels in groups of 4, AMX's layout); channel chunks and kernel taps
// loop around it.
void schedule_amx_tile(ConvQFuncs &f, int chunk) {
  Var ac = f.acc.args()[0], ax = f.acc.args()[1];
  f.acc.store_in(MemoryType::AMXTile).vectorize(ac, 16).vectorize(ax, 16);
  RVar rk("rk"), rko("rko"), rki("rki");
  f.acc.update()
      .fuse(f.r.x, f.r.y, rk)
      .split(rk, rko, rki, chunk)
      .reorder(rki, ac, ax, rko, f.r.z, f.r.w)
      .atomic()
      .vectorize(rki)
      .vectorize(ac, 16)
      .vectorize(ax, 16);
}

// AMX through padded rows: a task is a block of 16 output channels; its tiles cover the padded
// image's row (16 pixels each, the last shifted inward) into an i32 buffer that the epilogue
// reads at x + Wp y.
void schedule_conv2d_q_amx_padded_rows(ConvQFuncs &f, const KernelSpec &s, const Knobs &k) {
  const int64_t M = s.out_shape[1];
  Var co = f.output.args()[0], x = f.output.args()[1], y = f.output.args()[2], n = f.output.args()[3];
  Var co_o("co_o"), co_i("co_i");
  f.output.split(co, co_o, co_i, 16).vectorize(co_i).reorder(co_i, x, y, co_o, n);
  parallel_tasks(f.output, co_o, M / 16, k);
  // Tiles leave through tilestored into rows 32 lanes apart (see schedule_conv2d_q_amx).
  Func tile = f.acc.in();
  Var tc = tile.args()[0], tp = tile.args()[1], tp_o("tp_o"), tp_i("tp_i");
  tile.compute_at(f.output, co_o)
      .align_storage(tc, 32)
      .split(tp, tp_o, tp_i, 16, TailStrategy::ShiftInwards)
      .vectorize(tc, 16)
      .vectorize(tp_i);
  f.acc.compute_at(tile, tp_o);
  schedule_amx_tile(f, amx_channel_chunk(f.padded_channels));
  f.padded_row.compute_root();
  Var pc = f.padded_row.args()[0];
  if (s.in_shape[1] >= 64) f.padded_row.vectorize(pc, 64, TailStrategy::GuardWithIf);
}

// AMX in image rows (or, for conv2d_q_amx_flat, the one row of all pixels): each task computes
// tiles of 16 output channels by 16 columns (Halide 21 extracts square tiles only, so narrower
// outputs compute 16 columns and keep theirs). Each tile is stored to memory, where the vector
// epilogue adds the bias and requantizes it.
void schedule_conv2d_q_amx(ConvQFuncs &f, const KernelSpec &s, const Knobs &k) {
  if (f.padded_rows) return schedule_conv2d_q_amx_padded_rows(f, s, k);
  const int64_t M = s.out_shape[1], OW = s.out_shape[3], OH = s.out_shape[2];
  const int rows = (int)std::min<int64_t>(16, OW);
  const int chunk = amx_channel_chunk(f.padded_channels);
  Var co = f.output.args()[0], x = f.output.args()[1], y = f.output.args()[2], n = f.output.args()[3];
  Var co_o("co_o"), co_i("co_i"), x_o("x_o"), x_i("x_i"), t_("tile");
  f.output.split(co, co_o, co_i, 16)
      .split(x, x_o, x_i, rows, TailStrategy::ShiftInwards)
      .vectorize(co_i)
      .unroll(x_i);
  Var at = x_o;  // the loop whose iterations are tiles
  if (OH == 1 && OW > 16) {
    // One long row (as a 1x1 layer's pixels become, conv2d_q_amx_flat): a task is a run of pixel tiles,
    // each through every channel block (its activations stay in L1, the weights in L2).
    f.output.reorder(co_i, x_i, co_o, x_o, y, n);
    parallel_tasks(f.output, x_o, (OW + 15) / 16, k);
    at = co_o;
  } else if (knob(k, "row_major", 0)) {
    f.output.reorder(co_i, x_i, x_o, co_o, y, n).fuse(co_o, y, t_);
    parallel_tasks(f.output, t_, OH * (M / 16), k);
  } else {
    f.output.reorder(co_i, x_i, x_o, y, co_o, n).fuse(y, co_o, t_);
    parallel_tasks(f.output, t_, OH * (M / 16), k);
  }

  // The tile leaves the AMX registers only through a whole-tile copy (tilestored), which
  // Halide 21 recognizes by a two-dimensional store index: the copy's rows are spaced 32 lanes
  // apart (16 would fuse them into one dense ramp).
  Func tile = f.acc.in();
  Var tc = tile.args()[0], tx = tile.args()[1];
  tile.compute_at(f.output, at).bound_extent(tx, 16).align_storage(tc, 32).vectorize(tc, 16).vectorize(tx, 16);
  f.acc.compute_at(f.output, at).bound_extent(f.acc.args()[1], 16);
  schedule_amx_tile(f, chunk);
}

// The vector path: a register tile of co_vectors x x_tile accumulators (kernels/register_tile.h).
void schedule_conv2d_q_vector(ConvQFuncs &f, const KernelSpec &s, const Knobs &k) {
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
  if (f.madd_u8) {
    // One vector of pair sums (2 per channel) per vector of channels and column, in registers:
    // its update (the 2 products of a pair, the pairs and the channels as lanes) is vpmaddubsw.
    Var q = f.pair.args()[0], pc = f.pair.args()[1];
    f.pair.compute_at(f.acc, cv).store_in(MemoryType::Register).bound_extent(q, 2).vectorize(q).vectorize(pc);
    f.pair.update().reorder(f.rp.x, q, pc).atomic(true).vectorize(f.rp.x).vectorize(q).vectorize(pc);
  }
}

}  // namespace

void schedule_conv2d_q(ConvQFuncs &f, const KernelSpec &spec, const Knobs &k, const Target &t) {
  const KernelSpec s = conv2d_q_as_row(spec, k) ? pixels_as_row(spec) : spec;
  if (knob(k, "amx", 0)) {
    std::string why = conv2d_q_amx_unfit(s, k, t);
    if (!why.empty()) throw Error("conv2d_q: knob amx=1 does not fit this layer: " + why);
    schedule_conv2d_q_amx(f, s, k);
  } else {
    schedule_conv2d_q_vector(f, s, k);
  }
  if (f.has_padding && !f.padded_rows) {  // (padded rows materialize padded_row instead)
    Var pc = f.padded.args()[0], px = f.padded.args()[1], py = f.padded.args()[2];
    const bool stem = s.in_shape[1] <= 4 && s.in_shape[3] >= 16;  // an image's few channels (below)
    if (s.in_shape[2] == 1 && s.in_shape[3] >= 256 && !stem) {
      // One row of all pixels (pixel_row): 16 runs of pixels in parallel instead of one row.
      Var pxo("pxo"), pxi("pxi");
      f.padded.compute_root().split(px, pxo, pxi, (int)((s.in_shape[3] + 15) / 16), TailStrategy::GuardWithIf)
          .parallel(pxo);
    } else {
      f.padded.compute_root().parallel(py);
    }
    if (f.wide_input && s.in_shape[1] >= 16) {
      f.padded.vectorize(pc, 16, TailStrategy::GuardWithIf);  // one vector of i16
    } else if (s.in_shape[1] >= 64) {
      f.padded.vectorize(pc, 64, TailStrategy::GuardWithIf);
    } else if (stem) {
      // An image's few channels (a stem): the padded groups of channels by 16 columns as one
      // vector, stored in one piece. Vectorized along the columns with the channels unrolled,
      // the copy gathered 3 bytes per pixel, for which LLVM's Zen 4 code uses SSE4a's insertq
      // (and Ice Lake then fell back to code without vpdpbusd: codegen/target.h).
      f.padded.bound(pc, 0, (int)f.padded_channels)
          .reorder(pc, px, py)
          .vectorize(pc)
          .vectorize(px, 16, TailStrategy::GuardWithIf);
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
  s.knobs.push_back({"amx", "1: AMX tile products (x86 with avx512_sapphirerapids, where the layer fits: lowering "
                     "turns it off elsewhere; tiles of 16 channels x 16 pixels, weights in blocks of 16 channels); "
                     "default 1 where it measured faster", {0, 1}, {0, 1}, true});
  s.knobs.push_back({"wide_input", "1: with group 2 (vpmaddwd), the input widened to i16 once, in a copy, so that each "
                     "reduction step broadcasts a channel pair with one load instead of widening it per tile",
                     {0, 1}, {0, 1}, false});
  s.knobs.push_back({"madd_u8", "1: groups of 4 channels as two u8 x i8 pairs in saturating 16-bit lanes (x86 "
                     "vpmaddubsw), then the pairs in 32 bits (vpmaddwd against ones); exact for weights within "
                     "[-64, 63] only: set by lowering for weights of 7 bits or fewer (w7a8, w4a8, ...) stored one per byte "
                     "on x86 with AVX2 and no VNNI",
                     {}, {0, 1}, false, true});
  s.knobs.push_back({"pixel_row", "1: a 1x1 stride-1 layer's pixels as one row (vector path), register tiles running "
                     "across the image's rows in runs of tiles (no columns computed past a row's end)",
                     {0, 1}, {0, 1}, false});
  s.knobs.push_back({"flat_weights", "1: weights packed as one block of all output channels, so that a register tile at "
                     "any channel offset (a last block shifted inward) loads them densely; 0: in blocks of the tile's "
                     "channels (a shifted last block gathers). Default 1 on VNNI x86 where the default tile does not divide the channels",
                     {0, 1}, {0, 1}, true});
  s.normalize = [](const KernelSpec &s, Knobs k) {
    k = register_tile_normalize(s, std::move(k), 16);
    if (k.count("wide_input") && !conv2d_q_wide_input(s, k)) k["wide_input"] = 0;
    if (k.count("madd_u8") && !conv2d_q_madd_u8(s, k)) k["madd_u8"] = 0;
    if (k.count("pixel_row") && !conv2d_q_pixel_row(s, k)) k.erase("pixel_row");
    if (knob(k, "pixel_row", 0)) k.erase("row_major");  // tasks are runs of one row's tiles
    // One block holds every channel anyway: both layouts are the same.
    if (k.count("flat_weights") && (knob(k, "amx", 0) || register_tile_channels(s.out_shape[1], k, 16) >= s.out_shape[1]))
      k["flat_weights"] = 0;
    if (knob(k, "amx", 0)) {
      if (!amx_shape_unfit(s, k).empty()) {
        k["amx"] = 0;
      } else {  // the register tile's knobs do not apply: one canonical form
        k["vec"] = 16;
        k["co_vectors"] = 1;
        k["x_tile"] = 1;
      }
    }
    return k;
  };
  s.for_target = [](const KernelSpec &s, Knobs k, const Target &t) {
    if (knob(k, "amx", 0) && !conv2d_q_amx_unfit(s, k, t).empty()) k["amx"] = 0;  // lowering applies this
    return k;
  };
  return s;
}

}  // namespace qnnc
