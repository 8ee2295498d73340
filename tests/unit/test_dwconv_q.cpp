// Integer depthwise convolution (dwconv2d_q), bit-exact against a naive integer reference:
// odd channel counts around the vector width, stride 2, padding that reads a non-zero input
// zero point, dilation, 3x3/5x5/7x7, batch 2, ReLU and ReLU6-style clamps, a residual, 4-bit
// levels, and both tie rules; on the host target and on x86-avx2.
#include <gtest/gtest.h>

#include <cmath>

#include "qreference.h"
#include "kernels/conv2d_grouped.h"
#include "kernels/halide_kernel.h"

namespace {

using qnnc::DType;
using qref::ConvQParams;
using qref::ITensor;
using qref::Shape;

struct DCase {
  int64_t N, C, H, W, K, stride, pad, dil;
  int in_zp = 0, out_zp = 0, qmax = 255;
  bool relu = false, residual = false, even = false;
  int hi = -1;  // clamp maximum below qmax (a bounded ReLU), -1: qmax
  int64_t G = 0, M = 0;  // grouped: groups and output channels; 0: depthwise (G = M = C)
  std::string name() const {
    std::string s = "n" + std::to_string(N) + "_c" + std::to_string(C) + "_" + std::to_string(H) + "x" +
                    std::to_string(W) + "_k" + std::to_string(K) + "_s" + std::to_string(stride) + "_p" +
                    std::to_string(pad) + "_d" + std::to_string(dil) + "_izp" + std::to_string(in_zp) + "_ozp" +
                    std::to_string(out_zp) + "_q" + std::to_string(qmax);
    if (relu) s += "_relu";
    if (hi >= 0) s += "_hi" + std::to_string(hi);
    if (residual) s += "_res";
    if (even) s += "_even";
    if (G) s += "_g" + std::to_string(G) + "_m" + std::to_string(M);
    return s;
  }
};

void run_case(const DCase &c, const std::string &target, const std::map<std::string, qnnc::Knobs> &knobs = {}) {
  uint64_t seed = 1469598103934665603ull;
  for (unsigned char ch : c.name()) seed = (seed ^ ch) * 1099511628211ull;
  qref::Rng rng(seed);
  const Shape xs{c.N, c.C, c.H, c.W};
  const int64_t OH = qref::out_size(c.H, c.K, c.stride, c.pad, c.pad, c.dil);
  const int64_t OW = qref::out_size(c.W, c.K, c.stride, c.pad, c.pad, c.dil);
  const int64_t G = c.G ? c.G : c.C, M = c.M ? c.M : c.C, Cg = c.C / G, Mg = M / G;
  const Shape ys{c.N, M, OH, OW};
  ITensor x = qref::random_levels(xs, rng, 0, c.qmax);
  std::vector<int32_t> w((size_t)(M * Cg * c.K * c.K));
  for (auto &v : w) v = (int32_t)rng.integer(-127, 127);
  // Accumulators without bias: the taps of the input channels of the output channel's group,
  // padding = in_zp.
  std::vector<int64_t> acc0((size_t)qref::numel(ys));
  for (int64_t n = 0; n < c.N; n++)
    for (int64_t ch = 0; ch < M; ch++)
      for (int64_t oy = 0; oy < OH; oy++)
        for (int64_t ox = 0; ox < OW; ox++) {
          int64_t a = 0;
          for (int64_t ci = 0; ci < Cg; ci++)
            for (int64_t ky = 0; ky < c.K; ky++)
              for (int64_t kx = 0; kx < c.K; kx++) {
                int64_t iy = oy * c.stride - c.pad + ky * c.dil, ix = ox * c.stride - c.pad + kx * c.dil;
                int64_t in_c = (ch / Mg) * Cg + ci;
                int64_t xv = (iy >= 0 && iy < c.H && ix >= 0 && ix < c.W) ? x.at(n, in_c, iy, ix) : c.in_zp;
                a += xv * w[((ch * Cg + ci) * c.K + ky) * c.K + kx];
              }
          acc0[((n * M + ch) * OH + oy) * OW + ox] = a;
        }
  double sm = 0, ss = 0;
  for (auto a : acc0) sm += (double)a, ss += (double)a * a;
  double mean = sm / acc0.size(), sd = std::sqrt(std::max(1.0, ss / acc0.size() - mean * mean));
  std::vector<int32_t> bias(M), mult(M), shift(M);
  for (int64_t m = 0; m < M; m++) {
    double target_m = (c.qmax / 4.0) / sd;
    int e = (int)std::floor(std::log2(target_m));
    mult[m] = (int32_t)rng.integer(1ll << 30, (1ll << 31) - 1);
    shift[m] = std::clamp<int>(30 - e + (int)rng.integer(-1, 1), 30, 45);
    double real = mult[m] / std::ldexp(1.0, shift[m]);
    bias[m] = (int32_t)std::llround(-mean + (0.4 * c.qmax - c.out_zp) / real + (double)rng.integer(-(int64_t)sd, (int64_t)sd) / 2);
  }
  std::vector<int64_t> acc = acc0;
  const int64_t HW = OH * OW;
  for (size_t i = 0; i < acc.size(); i++) acc[i] += bias[(i / HW) % M];
  ConvQParams p;
  p.relu = c.relu;
  p.in_zp = c.in_zp;
  p.out_zp = c.out_zp;
  p.qmax = c.hi >= 0 ? c.hi : c.qmax;  // the reference clamps at qmax: a bounded ReLU lowers it
  p.ties_to_even = c.even;
  p.res_mult = (int32_t)rng.integer(1ll << 21, (1ll << 22) - 1);
  p.res_shift = (int)rng.integer(22, 23);
  p.res_zp = 100;
  ITensor r;
  if (c.residual) r = qref::random_levels(ys, rng, 0, c.qmax);
  ITensor ref = qref::requantize(acc, ys, mult, shift, c.residual ? &r : nullptr, p);
  int64_t inside = 0;
  for (auto v : ref.data) inside += v > 0 && v < p.qmax;
  ASSERT_GT(inside, (int64_t)ref.data.size() / 4) << "test setup: outputs mostly saturated";

  // f32 -> quantize -> conv2d_q (group = C) -> dequantize -> f32; a bounded ReLU is expressed
  // as the output value's scale and relu_max (the lowering derives the clamp level from them).
  qnnc::Graph g;
  int xq = qref::add_quantize(g, qref::add_input(g, "x", xs), 1.f, 0, c.qmax);
  int rq = c.residual ? qref::add_quantize(g, qref::add_input(g, "r", ys), 1.f, 0, c.qmax) : -1;
  qnnc::Node n;
  n.name = "dw";
  n.op = "conv2d_q";
  n.inputs = {xq, g.add_iconst("dw.w", {M, Cg, c.K, c.K}, DType::i8, w), g.add_iconst("dw.b", {M}, DType::i32, bias),
              g.add_iconst("dw.m", {M}, DType::i32, mult), g.add_iconst("dw.s", {M}, DType::i32, shift)};
  if (c.residual) n.inputs.push_back(rq);
  n.set_ints("strides", {c.stride, c.stride});
  n.set_ints("pads", {c.pad, c.pad, c.pad, c.pad});
  n.set_ints("dilations", {c.dil, c.dil});
  n.set_i("group", G);
  n.set_i("relu", c.relu);
  if (c.hi >= 0) n.set_f("relu_max", (float)(c.hi - c.out_zp));  // output scale 1
  n.set_i("in_zp", c.in_zp);
  n.set_i("out_zp", c.out_zp);
  n.set_i("qmax", c.qmax);
  n.attrs["rounding"].s = c.even ? "tonearest" : "upward";
  if (c.residual) {
    n.set_i("res_zp", p.res_zp);
    n.set_i("res_mult", p.res_mult);
    n.set_i("res_shift", p.res_shift);
  }
  int y = g.add_value("y", qref::ttype(DType::u8, {}));
  n.outputs = {y};
  g.add_node(n);
  qref::finish(g, {qref::add_dequantize(g, y, 1.f, 0)});
  qref::mark_u8(g, y, 1.f, 0);
  qnnc::Module mod = qref::compile(g, knobs, target);
  int dw = 0;
  for (const auto &st : mod.manifest()["steps"]) dw += st.value("describe", "").rfind("dwconv2d_q", 0) == 0;
  EXPECT_EQ(dw, 1) << "the depthwise / grouped integer kernel runs";
  std::vector<qnnc::Tensor> in{qref::to_float(x)};
  if (c.residual) in.push_back(qref::to_float(r));
  qref::expect_exact(mod.run(in)[0], ref, c.name() + " on " + target);
}

class DwConvQExact : public ::testing::TestWithParam<DCase> {};

TEST_P(DwConvQExact, MatchesIntegerReferenceOnHost) { run_case(GetParam(), "host"); }
// The input padded row by row inside each task (the integer default), and as one padded copy first.
TEST_P(DwConvQExact, MatchesIntegerReferenceWithRowsPadded) {
  run_case(GetParam(), "host", {{"dwconv2d_q", {{"pad_rows", 1}}}});
  run_case(GetParam(), "host", {{"dwconv2d_q", {{"pad_rows", 0}}}});
}
// Channel quads (u8 x i8 dot products over 4 channels, one weight non-zero) forced on every
// depthwise case with a multiple of 4 channels: 8- and 16-lane vectors, the last one shifted
// inward where they do not divide the channels (the default takes quads only where they do).
TEST_P(DwConvQExact, MatchesIntegerReferenceWithChannelQuads) {
  run_case(GetParam(), "host", {{"dwconv2d_q", {{"quads", 1}}}});
}
// Grouped layers with a task per group over every row (knob group_tasks; depthwise ignores it),
// the group's padded input built inside the task or padded whole first.
TEST_P(DwConvQExact, MatchesIntegerReferenceWithGroupTasks) {
  run_case(GetParam(), "host", {{"dwconv2d_q", {{"group_tasks", 1}, {"pad_rows", 1}}}});
  run_case(GetParam(), "host", {{"dwconv2d_q", {{"group_tasks", 1}, {"pad_rows", 0}}}});
}
// 16 lanes whatever the default, with widening multiplies and (where 4 divides a group's input
// channels) channel quads: grouped layers whose groups 16 does not divide run a last vector past
// the group's end, over weights padded after the last group.
TEST_P(DwConvQExact, MatchesIntegerReferenceWith16Lanes) {
  const DCase c = GetParam();
  if (c.G == 0) GTEST_SKIP() << "depthwise: covered above";
  run_case(c, "host", {{"dwconv2d_q", {{"vec", 16}, {"quads", 0}}}});
  run_case(c, "host", {{"dwconv2d_q", {{"vec", 16}, {"quads", 1}}}});
}
// Channel pairs (input widened to i16, products summed in pairs: vpmaddwd), forced with 8 and 16
// lanes on every grouped case whose groups have an even number of input channels (the others
// keep a widening multiply per channel); the default on x86 without a u8 dot product.
TEST_P(DwConvQExact, MatchesIntegerReferenceWithChannelPairs) {
  const DCase c = GetParam();
  if (c.G == 0) GTEST_SKIP() << "depthwise: pairs are for grouped layers";
  run_case(c, "host", {{"dwconv2d_q", {{"vec", 8}, {"quads", 0}, {"pairs", 1}}}});
  run_case(c, "host", {{"dwconv2d_q", {{"vec", 16}, {"quads", 0}, {"pairs", 1}}}});
  run_case(c, "host", {{"dwconv2d_q", {{"vec", 8}, {"quads", 0}, {"pairs", 1}, {"pad_rows", 0}}}});
  run_case(c, "host", {{"dwconv2d_q", {{"vec", 8}, {"quads", 0}, {"pairs", 1}, {"group_tasks", 1}}}});
}
TEST_P(DwConvQExact, MatchesIntegerReferenceOnAvx2) {
  if (!__builtin_cpu_supports("avx2")) GTEST_SKIP() << "no AVX2";
  run_case(GetParam(), "x86-avx2");
}

DCase mk(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t s, int64_t p, int64_t d, int izp, int ozp) {
  DCase c{N, C, H, W, K, s, p, d};
  c.in_zp = izp;
  c.out_zp = ozp;
  return c;
}

const std::vector<DCase> kCases = [] {
  std::vector<DCase> v = {mk(1, 3, 9, 11, 3, 1, 1, 1, 7, 0),   mk(1, 7, 8, 8, 3, 2, 1, 1, 128, 5),
                          mk(2, 13, 10, 7, 5, 1, 2, 1, 0, 0),  mk(1, 32, 14, 14, 3, 1, 1, 1, 128, 0),
                          mk(1, 33, 9, 9, 3, 2, 1, 1, 3, 0),   mk(1, 17, 12, 12, 3, 1, 2, 2, 128, 2),
                          mk(1, 40, 9, 9, 7, 1, 3, 1, 128, 0), mk(1, 96, 7, 7, 3, 2, 1, 1, 0, 128)};
  // Multiples of 64 channels (channel quads by default on x86 with VNNI): 3x3, 5x5 stride 2
  // with batch 2, dilation, ReLU6, a residual, and 36 / 144 channels (quads shifted inward when forced).
  v.push_back(mk(1, 64, 9, 7, 3, 1, 1, 1, 128, 3));
  v.push_back(mk(2, 128, 11, 11, 5, 2, 2, 1, 5, 0));
  v.push_back(mk(1, 64, 10, 10, 3, 1, 2, 2, 0, 7));
  v.push_back(mk(1, 36, 7, 9, 3, 1, 1, 1, 128, 0));
  v.push_back(mk(1, 144, 6, 6, 3, 2, 1, 1, 9, 1));
  DCase q6 = mk(1, 64, 7, 7, 3, 1, 1, 1, 128, 10);
  q6.relu = true;
  q6.hi = 180;
  v.push_back(q6);
  DCase qres = mk(1, 192, 5, 5, 3, 1, 1, 1, 7, 3);
  qres.residual = true;
  v.push_back(qres);
  DCase relu = mk(1, 24, 8, 8, 3, 1, 1, 1, 128, 10);
  relu.relu = true;
  v.push_back(relu);
  DCase relu6 = relu;
  relu6.hi = 200;
  v.push_back(relu6);
  DCase res = mk(1, 19, 6, 6, 3, 1, 1, 1, 7, 3);
  res.residual = true;
  v.push_back(res);
  DCase q4 = mk(1, 11, 7, 7, 3, 1, 1, 1, 8, 8);
  q4.qmax = 15;
  v.push_back(q4);
  DCase even = mk(2, 9, 6, 6, 3, 2, 1, 1, 128, 0);
  even.even = true;
  v.push_back(even);
  // Grouped: ResNeXt-like (32 groups of 4), RegNet-like (groups of 8 -> 8, stride 2), groups of
  // odd widths, more outputs than inputs per group, a residual.
  auto grouped = [&](DCase c, int64_t G, int64_t M) {
    c.G = G;
    c.M = M;
    v.push_back(c);
  };
  grouped(mk(1, 128, 6, 6, 3, 1, 1, 1, 0, 0), 32, 128);
  grouped(mk(2, 48, 9, 9, 3, 2, 1, 1, 128, 3), 6, 48);
  grouped(mk(1, 15, 7, 5, 3, 1, 1, 1, 7, 0), 3, 21);
  grouped(mk(1, 12, 8, 8, 1, 1, 0, 1, 0, 0), 4, 8);
  grouped(mk(2, 16, 5, 7, 1, 1, 0, 1, 3, 0), 2, 24);  // 1x1 without padding, 12 outputs per group
  // RegNet's group widths that 16 lanes do not divide (24, 40 at stride 2, 232: 16 lanes by
  // default, the last vector past the group's end).
  grouped(mk(1, 48, 9, 9, 3, 1, 1, 1, 128, 0), 2, 48);
  grouped(mk(1, 120, 9, 9, 3, 2, 1, 1, 5, 2), 3, 120);
  grouped(mk(1, 464, 5, 5, 3, 1, 1, 1, 0, 0), 2, 464);
  DCase gres = mk(1, 20, 6, 6, 3, 1, 1, 1, 7, 3);
  gres.residual = true;
  grouped(gres, 5, 20);
  // Groups whose default tile on x86-avx2 would spill (dwconv2d_q_pair_columns: 3 columns):
  // groups of 48 at 14 columns, of 24 at 16 columns (the last tile shifted inward), batch 2
  // with a residual.
  grouped(mk(1, 96, 14, 14, 3, 1, 1, 1, 128, 0), 2, 96);
  DCase g24 = mk(2, 72, 16, 16, 3, 1, 1, 1, 7, 3);
  g24.residual = true;
  grouped(g24, 3, 72);
  return v;
}();

INSTANTIATE_TEST_SUITE_P(Depthwise, DwConvQExact, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<DCase> &i) { return i.param.name(); });

}  // namespace

// On x86 without a u8 dot product, grouped layers on channel pairs take columns whose tile fits
// AVX2's 16 registers (accumulators, the widened weight vectors, a broadcast); by target
// string, whatever CPU runs the test.
TEST(DwConvQDefaults, PairTilesFitAvx2Registers) {
  auto spec = [](int64_t C, int64_t G, int64_t HW) {
    qnnc::KernelSpec s;
    s.kind = "dwconv2d_q";
    s.dtype = "u8";
    s.group = G;
    s.in_shape = {1, C, HW, HW};
    s.out_shape = {1, C, HW, HW};
    s.kernel = {3, 3};
    s.pads = {1, 1, 1, 1};
    return s;
  };
  const Halide::Target avx2("x86-64-linux-avx2-fma-f16c-sse41"),
      avx512("x86-64-linux-avx512-avx512_skylake-avx2-fma-f16c-sse41");
  // Groups of 48 (6 vectors of 8): 6 x 2 at 14 columns and 3 x 4 at 56 would take 19 and 16.
  for (int64_t hw : {14, 56, 7}) {
    qnnc::Knobs k = qnnc::default_knobs(spec(432, 9, hw), avx2);
    EXPECT_EQ(qnnc::knob(k, "pairs", 0), 1);
    EXPECT_EQ(qnnc::knob(k, "x_tile", 0), 3) << hw << " columns";
  }
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(spec(168, 7, 28), avx2), "x_tile", 0), 3) << "groups of 24 at 28 columns";
  // Groups of 16 (2 vectors): 2 x 4 fits; AVX-512 keeps the general rule.
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(spec(256, 16, 28), avx2), "x_tile", 0), 4);
  const qnnc::KernelSpec s512 = spec(432, 9, 14);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(s512, avx512), "x_tile", 0),
            qnnc::knob(qnnc::conv2d_grouped_default_knobs(s512, avx512), "x_tile", 0));
}
