#include "kernels/knob_space.h"
#include "kernels/conv2d_grouped.h"
#include "kernels/requantize.h"

#include <algorithm>

using namespace Halide;

namespace qnnc {

namespace {

// The depthwise schedule (fp32 and integer). Inside a task, xt output columns of one channel
// vector of vec lanes accumulate in registers over the window's taps (r). Tasks:
// - strip == 0: one output row each, every channel block in turn. With pad_inline, no padded
//   input: loads test the borders (Halide splits the loops so that the interior does not);
//   else (pad_vec > 0) the padded input is computed once, rows in parallel, pad_vec lanes at a
//   time, or, with pad_rows, the rows each task's output row needs, inside the task.
// - strip > 0: one channel block over `strip` output rows each. A channel block's input rows
//   stay in L1 from one output row to the next, instead of every row re-reading its window's
//   rows from L2 for all channels; the padded input (pad_vec > 0) is the block's own small
//   buffer, built inside the task, its lines contiguous.
void schedule_depthwise(Func out, Func acc, Func padded, RDom r, int64_t M, int64_t OW, int64_t OH, int vec, int xt,
                        int pad_vec, bool pad_rows, bool pad_inline, int strip) {
  Var c = out.args()[0], x = out.args()[1], y = out.args()[2], n = out.args()[3];
  const int vw = (int)std::min<int64_t>(vec, M);
  Var co("co"), ci("ci"), xo("xo"), xi("xi"), yo("yo"), yi("yi"), task("task");
  TailStrategy ctail = M % vw == 0 ? TailStrategy::RoundUp : TailStrategy::ShiftInwards;
  out.split(c, co, ci, vw, ctail).split(x, xo, xi, std::min<int>(xt, (int)OW), TailStrategy::ShiftInwards);
  if (strip > 0) {
    const int rows = (int)std::min<int64_t>(strip, OH);
    out.split(y, yo, yi, rows, TailStrategy::ShiftInwards)
        .reorder(ci, xi, xo, yi, co, yo, n)
        .fuse(co, yo, task)
        .fuse(task, n, task)
        .parallel(task);
  } else {
    out.reorder(ci, xi, xo, co, y, n).fuse(y, n, task).parallel(task);
  }
  out.vectorize(ci).unroll(xi);
  Var ac = acc.args()[0], ax = acc.args()[1];
  acc.compute_at(out, xo).vectorize(ac).unroll(ax);
  acc.update().reorder(ac, ax, r.x, r.y).vectorize(ac).unroll(ax).unroll(r.x);
  if (pad_vec > 0 && !(pad_inline && strip == 0)) {
    if (strip > 0 || pad_rows) padded.compute_at(out, task);
    else padded.compute_root().parallel(padded.args()[2]);
    if (pad_vec > 1) padded.vectorize(padded.args()[0], pad_vec, TailStrategy::GuardWithIf);
  }
}

// The grouped schedule (fp32 and integer): per task one group's Mg output channels in the
// vector lanes for xt output columns; acc(m, gi, x, y, n) is computed per group. The group's
// vectors are summed in blocks of up to max_acc / xt vectors, each block's registers over the
// whole reduction (vectors beyond a register file would go to the stack). The padded input
// (pad_vec > 0) is computed once, rows in parallel, or with pad_rows inside each task.
void schedule_grouped(Func out, Func acc, Func padded, RDom r, int64_t Mg, int64_t OW, int vec, int xt, int pad_vec,
                      int max_acc, bool group_tasks, bool quads = false, bool pad_rows = false) {
  Var c = out.args()[0], x = out.args()[1], y = out.args()[2], n = out.args()[3];
  Var m = acc.args()[0], ax = acc.args()[2];
  const int vw = (int)std::min<int64_t>(vec, Mg);
  const int xs = std::min<int>(xt, (int)OW);
  const int bv = grouped_block_vectors((int)((Mg + vw - 1) / vw), xs, max_acc);
  Var g("g"), mi("mi"), xo("xo"), xi("xi"), mo("mo"), mv("mv"), mb("mb"), mu("mu");
  out.split(c, g, mi, (int)Mg).split(x, xo, xi, xs, TailStrategy::ShiftInwards);
  if (group_tasks) {
    // A task per group over every row: the group's weights stay in cache for all its rows.
    out.reorder(mi, xi, xo, y, g, n).fuse(g, n, g).parallel(g);
  } else {
    out.reorder(mi, xi, g, xo, y, n).fuse(y, n, y).parallel(y);
  }
  // A group's last vector, where the lanes do not divide Mg: the output's shifted inward (it
  // stores some channels twice), the accumulator's rounded up past the group's end (its extra
  // lanes read the zeros its packed weight vector is padded with: grouped_weight_lanes).
  out.vectorize(mi, vw, TailStrategy::ShiftInwards).unroll(xi);
  acc.compute_at(out, group_tasks ? xo : g).split(m, mo, mv, vw, TailStrategy::RoundUp).vectorize(mv).unroll(ax);
  Stage update = acc.update();
  update.split(m, mo, mv, vw, TailStrategy::RoundUp).split(mo, mb, mu, bv);
  if (quads) {
    // r = (k of the quad, quad, kx, ky): the quad's 4 products summed into each lane.
    update.reorder(r.x, mv, mu, ax, r.y, r.z, r.w, mb).atomic().vectorize(r.x);
  } else {
    update.reorder(mv, mu, ax, r.x, r.y, r.z, mb);
  }
  update.vectorize(mv).unroll(mu).unroll(ax);
  if (pad_vec > 0) {
    if (pad_rows) padded.compute_at(out, group_tasks ? g : y);
    else padded.compute_root().parallel(padded.args()[2]);
    if (pad_vec > 1) padded.vectorize(padded.args()[0], pad_vec, TailStrategy::GuardWithIf);
  }
}

// Accumulator vectors a grouped tile may keep in registers: 24 of AVX-512's 32, 12 of 16
// elsewhere (the rest hold a weight vector and broadcasts).
int grouped_max_acc(const Target &t) { return t.has_feature(Target::AVX512) ? 24 : 12; }

// Estimated cycles per useful FMA of an fp32 grouped tile of xs output columns over a row of
// OW. A step of a block of bv vectors by xs columns issues bv * xs FMAs (2 a cycle), loads bv
// weight vectors and xs broadcasts (2 a cycle), keeps bv * xs accumulators (each waits
// `latency` cycles, 4 by default, for its last FMA) and, where a group's weights exceed L1,
// streams its weight vectors from L2 (`l2_bytes` a cycle). Columns past the row's end (the last
// tile shifted inward) count as waste.
double grouped_tile_cost(int64_t Mg, int64_t Cg, int64_t taps, int64_t OW, int vw, int max_acc, int xs,
                         double latency = 4, double l2_bytes = 32) {
  const int nv = (int)((Mg + vw - 1) / vw), bv = grouped_block_vectors(nv, xs, max_acc);
  const bool l2 = Mg * Cg * taps * 4 > (32 << 10);
  const double fma = bv * xs;
  const double cyc = std::max({fma / 2, (bv + xs) / 2.0, latency, l2 ? bv * vw * 4 / l2_bytes : 0.0});
  return cyc / fma * (double)((OW + xs - 1) / xs * xs) / OW;
}

// The given columns (the divisor rule's), or where grouped_tile_cost estimates one at least 10%
// faster, max_x columns with the last tile shifted inward or another divisor of the row up to max_acc
// columns (a group of one vector: one accumulator a column).
// With `any_width`, any column count up to max_acc is a candidate (the last tile shifted inward),
// a tile waits `latency` cycles a step at least, and L2 streams `l2_bytes` a cycle.
int grouped_columns(int64_t Mg, int64_t Cg, int64_t taps, int64_t OW, int vw, int max_acc, int given, int max_x,
                    bool any_width = false, double latency = 4, double l2_bytes = 32) {
  std::vector<int> cands{(int)std::min<int64_t>(max_x, OW)};
  for (int d = 2; d <= std::min<int64_t>(max_acc, OW); d++)
    if (OW % d == 0 || any_width) cands.push_back(d);
  int pick = given;
  const double old = grouped_tile_cost(Mg, Cg, taps, OW, vw, max_acc, given, latency, l2_bytes);
  double best = old;
  for (int xs : cands) {
    const double c = grouped_tile_cost(Mg, Cg, taps, OW, vw, max_acc, xs, latency, l2_bytes);
    if (c < best * (1 - 1e-9)) best = c, pick = xs;
  }
  return best < 0.9 * old ? pick : given;  // only a clear gain: the estimate is rough
}

}  // namespace

int grouped_block_vectors(int nv, int xs, int max_acc) {
  int bv = 1;
  for (int d = 1; d <= nv; d++)
    if (nv % d == 0 && d * xs <= std::max(max_acc, xs)) bv = d;
  return bv;
}

int dwconv2d_q_pair_columns(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int xt = std::max(1, knob(k, "x_tile", 4));
  if (s.group <= 1 || conv2d_is_depthwise(s) || s.out_shape.size() != 4 || t.has_feature(Target::AVX512)) return xt;
  const int64_t Mg = s.out_shape[1] / s.group, OW = s.out_shape[3];
  const int vw = (int)std::min<int64_t>(std::max(1, knob(k, "vec", 8)), Mg), nv = (int)((Mg + vw - 1) / vw);
  // Registers a tile of xs columns takes; 13 of the 16 measured without spills (3 x 3: 9
  // accumulators, 3 weight vectors, a broadcast), 16 spilled.
  auto block = [&](int xs) { return grouped_block_vectors(nv, xs, grouped_max_acc(t)); };
  auto accs = [&](int xs) { return block(xs) * xs; };
  auto regs = [&](int xs) { return accs(xs) + block(xs) + 1; };
  auto covered = [&](int xs) { return (OW + xs - 1) / xs * xs; };
  constexpr int kFit = 14;
  if (regs((int)std::min<int64_t>(xt, OW)) <= kFit) return xt;
  int best = 0;
  for (int xs = 1; xs <= std::min<int64_t>(4, OW); xs++)
    if (regs(xs) <= kFit && (!best || accs(xs) > accs(best) || (accs(xs) == accs(best) && covered(xs) < covered(best))))
      best = xs;
  return best ? best : xt;
}

bool conv2d_is_depthwise(const KernelSpec &s) {
  return s.group > 1 && s.group == s.in_shape[1] && s.group == s.out_shape[1];
}

int dwconv2d_q_quad_lanes(const KernelSpec &s, const Knobs &k) {
  if (!knob(k, "quads", 0) || !conv2d_is_depthwise(s) || s.in_shape[1] % 4 != 0) return 0;
  const int64_t C = s.in_shape[1];
  const int vec = std::max(8, knob(k, "vec", 16));
  for (int L = vec; L >= 8; L /= 2)
    if (4 * L <= C) return L;
  return 0;
}

bool dwconv2d_q_grouped_quads(const KernelSpec &s, const Knobs &k) { return dwconv2d_q_grouped_dot(s, k) == 4; }

int dwconv2d_q_grouped_dot(const KernelSpec &s, const Knobs &k) {
  if (s.group <= 1 || conv2d_is_depthwise(s)) return 0;
  const int64_t Cg = s.in_shape[1] / s.group;
  if (knob(k, "quads", 0) && Cg % 4 == 0) return 4;
  if (knob(k, "pairs", 0) && Cg % 2 == 0) return 2;
  return 0;
}

int64_t grouped_weight_lanes(const KernelSpec &s, const Knobs &k) {
  const int64_t Mg = s.out_shape[1] / std::max<int64_t>(1, s.group);
  return std::min<int64_t>(std::max(1, knob(k, "vec", 8)), Mg);
}

Knobs conv2d_grouped_default_knobs(const KernelSpec &s, const Target &t) {
  const int64_t OW = s.out_shape[3];
  int vec = t.natural_vector_size<float>();
  // Accumulators: x_tile vectors; up to 8 (16 with AVX-512's 32 registers), dividing OW if it can.
  int max_x = t.has_feature(Target::AVX512) ? 8 : 4, xt = 1;
  for (int c = max_x; c >= 1; c--)
    if (OW % c == 0) {
      xt = c;
      break;
    }
  if (xt == 1) xt = (int)std::min<int64_t>(max_x, OW);
  // Padded depthwise inputs larger than a core's L2 (2 MB here) are padded row by row. Grouped
  // (not depthwise) layers always pad inside each task (the rows a row task's window needs, or a
  // task's group over every row): the task then reads its input from a small buffer it has just
  // written, not from a padded copy of the whole input that has left L2 by then. AMD EPYC (Zen
  // 3), `bench --profile`, fp32, medians over 5 alternating rounds of each layer's ratio (each
  // round scaled by the layers both builds share), one / two threads: ResNeXt-50's 3x3/2 layers
  // 0.54-0.91x / 0.54-0.92x the time (256 -> 256 at 56x56 alone: 2.2 -> 0.64 ms, ONNX Runtime's
  // 0.89), its stride-1 layers 0.64-1.08x / 0.63-0.93x; RegNet-Y-800MF's 0.52-0.73x at stride 2,
  // 0.90-1.04x at stride 1; RegNet-X-3.2GF's 0.88-0.93x at stride 2, 0.84-1.07x at stride 1.
  const int64_t padded_bytes = s.in_shape[1] * (s.in_shape[2] + s.pads[0] + s.pads[2]) *
                               (s.in_shape[3] + s.pads[1] + s.pads[3]) * (s.dtype == "u8" ? 1 : 4);
  const int pad_rows = !conv2d_is_depthwise(s) || padded_bytes > (2 << 20) ? 1 : 0;
  // Grouped (not depthwise) layers whose groups the natural width does not divide: the natural
  // width, a group's last vector running past its end (grouped_weight_lanes), where that
  // computes at most an eighth more lanes (RegNet's groups of 56, 120, 168, 232, 264: 16 lanes
  // on AVX-512); else lanes that divide the group (groups of 24: 8 lanes, not 32 for 24). A
  // group's last vector guarded by an if instead made every reduction step a masked load and
  // FMA (RegNet-X-1.6GF took 2.8x ONNX Runtime's fp32 time and 6.7x its int8 time so).
  // Measured at 224x224 (`bench --profile`, per-layer minima of 3 alternating rounds, 1 / 2
  // threads), 16 lanes against 8: RegNet-Y-8GF's groups of 56 0.74x / 0.74x the time in fp32
  // and 0.47x / 0.44x in int8; RegNet-X-8GF's of 120 1.0x / 0.93x and 0.86x / 0.83x;
  // RegNet-X-1.6GF's of 24 1.04x / 0.96x and 1.02x / 0.75x (left on 8 lanes).
  const int64_t Mg = s.group > 0 ? s.out_shape[1] / s.group : s.out_shape[1];
  const int64_t over = (Mg + vec - 1) / vec * vec - Mg;
  if (!conv2d_is_depthwise(s) && Mg % vec != 0 && 8 * over > Mg + over)
    for (int l = vec / 2; l >= 4; l /= 2)
      if (Mg % l == 0) {
        vec = l;
        break;
      }
  // Grouped (not depthwise): other columns where the divisor rule's leave few accumulators
  // (grouped_columns). On AMD EPYC (Zen 3, AVX2; `bench --profile`, per-layer minima of 3-5
  // rounds, one thread, fp32): at 14x14, 4 columns instead of 2, RegNet-Y-16GF's groups of 112
  // 0.55-0.58x the time and ResNeXt-50's groups of 16 0.7x (also at stride 2); ResNeXt's groups
  // of 8 (one vector) at 28x28, 7 columns instead of 4, 0.75-0.84x; its groups of 4 at 56x56, 8
  // instead of 4, 0.9-1.3x (noise). 14 columns by one vector did as well on RegNet at 14x14 but
  // not on ResNeXt (2x at stride 2: its 512 channels put the 14 columns' inputs 4 KB apart).
  // AVX-512's choices are unchanged (7-8 columns leave 7 or more accumulators).
  // fp32 on x86 without AVX-512, groups of 2 vectors or more: also column counts that do not
  // divide the row, and a tile's step taken as at least 5 cycles (8 accumulators do not keep 2
  // multiply-adds a cycle going there). AMD EPYC (Zen 3), one thread, per-layer minima of 5
  // alternating rounds: RegNet-Y-16GF's groups of 112 at 14x14 0.86x the time with 2 vectors x
  // 5 columns instead of 2 x 4 (2 x 6 spilled, 1.2x; 1 x 7 0.95x, 1 x 14 0.98x), all its grouped
  // layers 0.73-0.96x; ResNeXt-50's groups of 16 at 14x14 0.77-1.17x. Its groups of one vector
  // (4 and 8 channels) took 1.1-1.5x as long with 10-12 columns: they keep the old rule. And
  // weights streamed from L2 at 16 bytes a cycle, not 32: RegNet-X-3.2GF's groups of 48 (6
  // vectors, 83 kB of weights) at 14x14 took 0.49-0.50x the time with 3 vectors x 4 columns
  // (or 3 x 3) instead of 6 x 2, which each step's 6 weight vectors from L2 held back.
  const bool avx2_f32 = t.arch == Target::X86 && !t.has_feature(Target::AVX512) && s.dtype == "f32" && Mg > vec;
  if (!conv2d_is_depthwise(s) && s.group > 1)
    xt = grouped_columns(Mg, s.in_shape[1] / s.group, s.kernel[0] * s.kernel[1], OW,
                         (int)std::min<int64_t>(vec, Mg), grouped_max_acc(t), (int)std::min<int64_t>(xt, OW), max_x,
                         avx2_f32, avx2_f32 ? 5 : 4, avx2_f32 ? 16 : 32);
  Knobs k{{"vec", vec}, {"x_tile", xt}, {"pad_rows", pad_rows}};
  // fp32 grouped: a task per group over all rows where there are at least 4 groups of 16 or more
  // input channels (a pixel's channels of a group fill a cache line) and at most 28 rows, so
  // that a group's weights stay in cache for all its rows. Measured (`bench --profile`, per-layer
  // minima of 3 alternating rounds, 1 / 2 threads, against a row per task): RegNet-X-3.2GF's
  // groups of 48: 21 groups at 7x7 0.66x / 0.55x the time, 9 at 14x14 0.93x / 0.77x, 4 at
  // 28x28 1.0x / 0.9x, 2 at 56x56 1.04x / 1.0x; ResNeXt-50's 32 groups: of 32 channels at 7x7
  // 0.78x, of 16 at 14x14 1.0x, of 8 at 28x28 1.2x / 1.35x, of 4 at 56x56 1.4x / 1.8x. The
  // integer kernel has the knob (RegNet-X-3.2GF 0.95x at one thread) but keeps 0: not measured
  // on ResNeXt.
  const int64_t Cg = s.group > 0 ? s.in_shape[1] / s.group : s.in_shape[1];
  if (s.kind == "conv2d_grouped" && !conv2d_is_depthwise(s) && s.group >= 4 && Cg >= 16 && s.out_shape[2] <= 28)
    k["group_tasks"] = 1;
  if (s.kind == "conv2d_grouped" && conv2d_is_depthwise(s)) {
    // Depthwise tasks (fp32), from MnasNet's 17 depthwise layers at 1 and 2 threads (`bench
    // --profile`, alternating modules): row tasks that read the input in place took 0.61-0.81
    // of the time of row tasks over a padded copy; 5x5 windows over outputs of 14 rows or less
    // (or 28 at stride 2) took 0.46-0.52 as channel-block strips (0.53-0.71 in place), whose
    // input rows stay in L1 from one output row to the next.
    const int64_t OH = s.out_shape[2], KK = s.kernel[0] * s.kernel[1];
    if (KK >= 25 && OH <= 28 && (OH <= 14 || s.stride[0] >= 2)) {
      // Rows per strip: a divisor of OH leaving at least 32 tasks where the blocks allow.
      const int64_t blocks = (s.out_shape[1] + vec - 1) / vec;
      const int64_t bound = std::max<int64_t>(1, OH / ((32 + blocks - 1) / blocks));
      int64_t rows = 1;
      for (int64_t d = 1; d <= bound; d++)
        if (OH % d == 0) rows = d;
      k["strip"] = (int)rows;
    } else {
      k["pad_inline"] = 1;
    }
  }
  return k;
}

HalideKernel build_conv2d_grouped(const KernelSpec &s, const Knobs &k, const Target &t) {
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const int64_t M = s.out_shape[1], OH = s.out_shape[2], OW = s.out_shape[3];
  const int64_t KH = s.kernel[0], KW = s.kernel[1], G = s.group, Cg = C / G, Mg = M / G;
  const bool dw = conv2d_is_depthwise(s);
  ImageParam input = fixed_param(Float(32), "input", {C, W, H, N});
  // Grouped: vectors of vw output channels per group, nvg of them (grouped_weight_lanes).
  const int64_t vw = grouped_weight_lanes(s, k), nvg = (Mg + vw - 1) / vw;
  ImageParam weights = dw ? fixed_param(Float(32), "weights", {C, KW, KH})
                          : fixed_param(Float(32), "weights", {vw, Cg, KW, KH, G * nvg});
  ImageParam bias = fixed_param(Float(32), "bias", {M});
  ImageParam residual;
  if (s.residual) residual = fixed_param(Float(32), "residual", {M, OW, OH, N});

  Var c("c"), x("x"), y("y"), n("n");
  bool pad = s.pads[0] || s.pads[1] || s.pads[2] || s.pads[3];
  Func padded("padded");
  if (pad)
    padded(c, x, y, n) = BoundaryConditions::constant_exterior(
        input, 0.f, {Range(), Range(0, (int)W), Range(0, (int)H), Range()})(c, x, y, n);
  else
    padded(c, x, y, n) = input(c, x, y, n);

  const int vec = std::max(1, knob(k, "vec", 8));
  const int xt = (int)std::clamp<int64_t>(knob(k, "x_tile", 4), 1, OW);
  Func out("output");
  Func acc("acc");
  if (dw) {
    RDom r(0, (int)KW, 0, (int)KH, "r");
    Expr ix = x * (int)s.stride[1] + r.x * (int)s.dilation[1] - (int)s.pads[1];
    Expr iy = y * (int)s.stride[0] + r.y * (int)s.dilation[0] - (int)s.pads[0];
    acc(c, x, y, n) = bias(c);
    acc(c, x, y, n) += weights(c, r.x, r.y) * padded(c, ix, iy, n);
    Expr v = acc(c, x, y, n);
    if (s.residual) v += residual(c, x, y, n);
    out(c, x, y, n) = fused_activation(v, s);
    fix_output(out, {M, OW, OH, N});

    schedule_depthwise(out, acc, padded, r, M, OW, OH, vec, xt, pad ? (C >= vec ? vec : 1) : 0, knob(k, "pad_rows", 0),
                       knob(k, "pad_inline", 0), knob(k, "strip", 0));
  } else {
    // acc(m, gi, x, y, n): output channel gi * Mg + m.
    Var m("m"), gi("gi");
    RDom r(0, (int)Cg, 0, (int)KW, 0, (int)KH, "r");
    Expr ix = x * (int)s.stride[1] + r.y * (int)s.dilation[1] - (int)s.pads[1];
    Expr iy = y * (int)s.stride[0] + r.z * (int)s.dilation[0] - (int)s.pads[0];
    // Where a group's last vector runs past its end, the bias joins in the epilogue (the
    // accumulator's extra lanes would read past the bias).
    const bool over = nvg * vw > Mg;
    acc(m, gi, x, y, n) = over ? Expr(0.f) : bias(gi * (int)Mg + m);
    acc(m, gi, x, y, n) += weights(m % (int)vw, r.x, r.y, r.z, gi * (int)nvg + m / (int)vw) *
                           padded(gi * (int)Cg + r.x, ix, iy, n);
    Expr v = acc(c % (int)Mg, c / (int)Mg, x, y, n);
    if (over) v += bias(c);
    if (s.residual) v += residual(c, x, y, n);
    out(c, x, y, n) = fused_activation(v, s);
    fix_output(out, {M, OW, OH, N});

    schedule_grouped(out, acc, padded, r, Mg, OW, vec, xt, pad ? (C >= vec ? vec : 1) : 0, grouped_max_acc(t),
                     knob(k, "group_tasks", 0), false, knob(k, "pad_rows", 0));
  }
  std::vector<ImageParam> args{input, weights, bias};
  if (s.residual) args.push_back(residual);
  return {Pipeline(out), args};
}

}  // namespace qnnc

namespace qnnc {

HalideKernel build_dwconv2d_q(const KernelSpec &s, const Knobs &k, const Target &t) {
  using namespace Halide::ConciseCasts;
  const int64_t N = s.in_shape[0], C = s.in_shape[1], H = s.in_shape[2], W = s.in_shape[3];
  const int64_t M = s.out_shape[1], OH = s.out_shape[2], OW = s.out_shape[3];
  const int64_t KH = s.kernel[0], KW = s.kernel[1];
  const int64_t G = s.group, Cg = C / G, Mg = M / G;
  const bool dw = conv2d_is_depthwise(s);
  ImageParam input = fixed_param(UInt(8), "input", {C, W, H, N});
  const int64_t vw = grouped_weight_lanes(s, k), nvg = (Mg + vw - 1) / vw;
  ImageParam weights = dw ? fixed_param(Int(8), "weights", {C, KW, KH})
                          : fixed_param(Int(8), "weights", {vw, Cg, KW, KH, G * nvg});
  // As in the fp32 kernel: the bias in the epilogue where a group's last vector runs past its end.
  const bool over = !dw && nvg * vw > Mg;
  ImageParam bias = fixed_param(Int(32), "bias", {M});
  ImageParam mult = fixed_param(Int(32), "mult", {M});
  ImageParam shift = fixed_param(Int(32), "shift", {M});
  ImageParam residual;
  if (s.residual) residual = fixed_param(UInt(8), "residual", {M, OW, OH, N});
  ImageParam qparams = fixed_param(Int(32), "qparams", {8});

  Var c("c"), x("x"), y("y"), n("n");
  bool pad = s.pads[0] || s.pads[1] || s.pads[2] || s.pads[3];
  Func padded("padded");
  if (pad)
    padded(c, x, y, n) = BoundaryConditions::constant_exterior(
        input, u8(qparams(0)), {Range(), Range(0, (int)W), Range(0, (int)H), Range()})(c, x, y, n);
  else
    padded(c, x, y, n) = input(c, x, y, n);
  if (const int L = dwconv2d_q_quad_lanes(s, k)) {
    // Channel quads: one u8 x i8 dot product (vpdpbusd) takes 4 consecutive channels of one tap,
    // as the input lies in memory, and weights that are zero but for one of the 4: accumulator
    // k of channel quad q collects channel 4q + k. Four dot products per tap and 4L channels
    // replace the widening multiply and add of each 16 channels; the epilogue interleaves the
    // four accumulators' outputs back into channel order.
    ImageParam wq = fixed_param(Int(8), "weights", {4, C / 4, 4, KW, KH});
    Var kq("kq"), cq("cq");
    RDom r(0, 4, 0, (int)KW, 0, (int)KH, "r");
    Expr ix = x * (int)s.stride[1] + r.y * (int)s.dilation[1] - (int)s.pads[1];
    Expr iy = y * (int)s.stride[0] + r.z * (int)s.dilation[0] - (int)s.pads[0];
    Func acc("acc");
    acc(kq, cq, x, y, n) = bias(4 * cq + kq);
    acc(kq, cq, x, y, n) += i32(padded(4 * cq + r.x, ix, iy, n)) * i32(wq(r.x, cq, kq, r.y, r.z));
    Func out("output");
    out(c, x, y, n) = u8(requantized_level(acc(c % 4, c / 4, x, y, n), mult(c), shift(c),
                                           s.residual ? residual(c, x, y, n) : Expr(), qparams, s.rounding));
    fix_output(out, {M, OW, OH, N});

    const int xt = (int)std::clamp<int64_t>(knob(k, "x_tile", 4), 1, OW);
    // c = 4 quad + ki, and the quads in vectors of L (the last shifted inward): the simplifier
    // then sees c % 4 = ki and c / 4 = quad (a vector's base c would hide that).
    Var cq_all("cq_all"), cb("cb"), cqi("cqi"), ki("ki"), xo("xo"), xi("xi");
    out.split(c, cq_all, ki, 4)
        .split(cq_all, cb, cqi, L, TailStrategy::ShiftInwards)
        .split(x, xo, xi, xt, TailStrategy::ShiftInwards)
        .reorder(ki, cqi, xi, xo, cb, y, n)
        .unroll(ki)
        .vectorize(cqi)
        .unroll(xi)
        .fuse(y, n, y)
        .parallel(y);
    acc.compute_at(out, xo).reorder_storage(cq, kq, acc.args()[2]).unroll(kq).vectorize(cq).unroll(acc.args()[2]);
    acc.update()
        .reorder(r.x, cq, kq, acc.args()[2], r.y, r.z)
        .atomic()
        .vectorize(r.x)
        .vectorize(cq)
        .unroll(kq)
        .unroll(acc.args()[2])
        .unroll(r.y);
    if (pad) {
      if (knob(k, "pad_rows", 0)) padded.compute_at(out, y);
      else padded.compute_root().parallel(padded.args()[2]);
      padded.vectorize(padded.args()[0], 4 * L, TailStrategy::GuardWithIf);
    }
    std::vector<ImageParam> args{input, wq, bias, mult, shift};
    if (s.residual) args.push_back(residual);
    args.push_back(qparams);
    return {Pipeline(out), args};
  }
  const int vec = std::max(1, knob(k, "vec", 8));
  const int xt = (int)std::clamp<int64_t>(knob(k, "x_tile", 4), 1, OW);
  if (const int D = dwconv2d_q_grouped_dot(s, k)) {
    // Channel quads of a group (D = 4): each reduction step broadcasts 4 consecutive input
    // channels (4 bytes, as they lie in memory) and takes a u8 x i8 dot product of 4 with each
    // output lane's 4 weights (vpdpbusd where the target has it). Channel pairs (D = 2): the
    // input widened to i16 in the padded copy, so that a step broadcasts 2 channels in
    // one 32-bit load and sums 2 products per i32 lane (vpmaddwd: 16 products an instruction on
    // AVX2, where a widening multiply per input channel took 8 and a broadcast of its own).
    ImageParam wq = fixed_param(Int(8), "weights", {D, vw, Cg / D, KW, KH, G * nvg});
    Var m("m"), gi("gi");
    RDom r(0, D, 0, (int)(Cg / D), 0, (int)KW, 0, (int)KH, "r");
    Expr ix = x * (int)s.stride[1] + r.z * (int)s.dilation[1] - (int)s.pads[1];
    Expr iy = y * (int)s.stride[0] + r.w * (int)s.dilation[0] - (int)s.pads[0];
    Func src = padded;
    if (D == 2) {
      src = Func("input16");
      src(c, x, y, n) = i16(padded(c, x, y, n));
    }
    Expr a = src(gi * (int)Cg + D * r.y + r.x, ix, iy, n);
    Expr w = wq(r.x, m % (int)vw, r.y, r.z, r.w, gi * (int)nvg + m / (int)vw);
    Func acc("acc");
    acc(m, gi, x, y, n) = over ? Expr(0) : bias(gi * (int)Mg + m);
    acc(m, gi, x, y, n) += D == 2 ? i32(a) * i32(i16(w)) : i32(a) * i32(w);
    Expr sum = acc(c % (int)Mg, c / (int)Mg, x, y, n);
    if (over) sum += bias(c);
    Func out("output");
    out(c, x, y, n) = u8(requantized_level(sum, mult(c), shift(c),
                                           s.residual ? residual(c, x, y, n) : Expr(), qparams, s.rounding));
    fix_output(out, {M, OW, OH, N});
    // Pairs: the widened copy is computed even without padding (16 lanes of i16 a vector): once
    // for the whole input, or with pad_rows each task's part inside the task.
    const int pad_vec = D == 2 ? (C >= 16 ? 16 : 1) : pad ? (C >= 32 ? 32 : 1) : 0;
    schedule_grouped(out, acc, src, r, Mg, OW, vec, xt, pad_vec, grouped_max_acc(t), knob(k, "group_tasks", 0), true,
                     knob(k, "pad_rows", 0));
    std::vector<ImageParam> args{input, wq, bias, mult, shift};
    if (s.residual) args.push_back(residual);
    args.push_back(qparams);
    return {Pipeline(out), args};
  }
  Func acc("acc");
  RDom r = dw ? RDom(0, (int)KW, 0, (int)KH, "r") : RDom(0, (int)Cg, 0, (int)KW, 0, (int)KH, "r");
  Expr sum;
  if (dw) {
    Expr ix = x * (int)s.stride[1] + r.x * (int)s.dilation[1] - (int)s.pads[1];
    Expr iy = y * (int)s.stride[0] + r.y * (int)s.dilation[0] - (int)s.pads[0];
    acc(c, x, y, n) = bias(c);
    acc(c, x, y, n) += i32(i16(padded(c, ix, iy, n)) * i16(weights(c, r.x, r.y)));
    sum = acc(c, x, y, n);
  } else {
    // As the fp32 grouped algorithm: acc(m, gi, ...) is output channel gi * Mg + m, and each
    // reduction step broadcasts one input value of its group to Mg output lanes.
    Var m("m"), gi("gi");
    Expr ix = x * (int)s.stride[1] + r.y * (int)s.dilation[1] - (int)s.pads[1];
    Expr iy = y * (int)s.stride[0] + r.z * (int)s.dilation[0] - (int)s.pads[0];
    acc(m, gi, x, y, n) = over ? Expr(0) : bias(gi * (int)Mg + m);
    acc(m, gi, x, y, n) +=
        i32(i16(padded(gi * (int)Cg + r.x, ix, iy, n)) *
            i16(weights(m % (int)vw, r.x, r.y, r.z, gi * (int)nvg + m / (int)vw)));
    sum = acc(c % (int)Mg, c / (int)Mg, x, y, n);
    if (over) sum += bias(c);
  }
  Func out("output");
  out(c, x, y, n) = u8(requantized_level(sum, mult(c), shift(c), s.residual ? residual(c, x, y, n) : Expr(), qparams,
                                         s.rounding));
  fix_output(out, {M, OW, OH, N});

  if (dw)
    schedule_depthwise(out, acc, padded, r, M, OW, OH, vec, xt, pad ? (C >= 32 ? 32 : 1) : 0, knob(k, "pad_rows", 0),
                       knob(k, "pad_inline", 0), knob(k, "strip", 0));
  else
    schedule_grouped(out, acc, padded, r, Mg, OW, vec, xt, pad ? (C >= 32 ? 32 : 1) : 0, grouped_max_acc(t),
                     knob(k, "group_tasks", 0), false, knob(k, "pad_rows", 0));
  std::vector<ImageParam> args{input, weights, bias, mult, shift};
  if (s.residual) args.push_back(residual);
  args.push_back(qparams);
  return {Pipeline(out), args};
}

std::vector<KnobSpace> conv2d_grouped_knob_spaces() {
  std::vector<KnobDecl> k{{"vec", "lanes per vector of channels", {8, 16, 32}, {}},
                          {"x_tile", "output columns per tile (accumulators)", {1, 2, 4, 7, 8, 14, 16}, {}},
                          {"pad_rows", "1 pads the input each task needs inside it (a row task: its window's rows; a "
                                       "grouped task per group: the group over every row); 0 pads the whole input first "
                                       "(default 1, but 0 for fp32 depthwise up to 2 MB)", {0, 1}, {0, 1}},
                          {"strip", "depthwise: 0 makes each task one output row over all channel blocks; n > 0 one "
                                    "channel block over n output rows, its input padded inside the task",
                           {0, 2, 4, 7, 8, 14, 28}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 28, 32, 56, 112}},
                          {"pad_inline", "depthwise with strip 0: 1 reads the input where it lies and tests the "
                                         "borders (no padded copy; fp32 default), 0 pads as pad_rows says",
                           {0, 1}, {0, 1}},
                          {"group_tasks", "grouped (not depthwise): 1 makes each task one group over every output "
                                          "row (its weights stay in cache), 0 one output row over every group",
                           {0, 1}, {0, 1}}};
  std::vector<KnobDecl> kq = k;
  kq.push_back({"quads", "channels a multiple of 4: 1 runs u8 x i8 dot products over 4 channels (depthwise: "
                         "with one non-zero weight each; grouped: 4 input channels of a group; vpdpbusd, x86 "
                         "with VNNI by default), 0 widening multiplies",
                {}, {0, 1}, true});
  kq.push_back({"pairs", "grouped (not depthwise), input channels per group even, without quads: 1 widens the "
                         "input to i16 once and sums pairs of products (vpmaddwd; default on x86 without a u8 "
                         "dot product), 0 a widening multiply per input channel",
                {0, 1}, {0, 1}, true});
  return {{"conv2d_grouped", "fp32 grouped and depthwise convolution (channels in the vector lanes)", k},
          {"dwconv2d_q", "integer grouped and depthwise convolution", kq}};
}

}  // namespace qnnc
