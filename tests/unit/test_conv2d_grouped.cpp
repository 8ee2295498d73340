// Grouped and depthwise fp32 convolutions (kernels/conv2d_grouped) against a naive grouped
// reference written here: depthwise with odd channel counts around the vector width, stride 2,
// padding, dilation, 1x1..5x5 kernels, a channel multiplier, groups whose channels do not fill
// a vector, batch 2, and the fused epilogues (folded batch norm, ReLU, ReLU6 from Clip(0, 6),
// residual add).
#include <gtest/gtest.h>

#include "reference.h"
#include "kernels/conv2d_grouped.h"

namespace {

using qnnc::Tensor;
using ref::Shape;

// y[n, m] = b[m] + sum over the group's channels; x [N,C,H,W], w [M, C/G, KH, KW].
Tensor grouped_conv(const Tensor &x, const std::vector<float> &w, const Shape &ws, const std::vector<float> &b,
                    int64_t G, int64_t stride, int64_t pad, int64_t dil) {
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t M = ws[0], Cg = ws[1], KH = ws[2], KW = ws[3], Mg = M / G;
  const int64_t OH = (H + 2 * pad - dil * (KH - 1) - 1) / stride + 1, OW = (W + 2 * pad - dil * (KW - 1) - 1) / stride + 1;
  Tensor y{{N, M, OH, OW}, std::vector<float>((size_t)(N * M * OH * OW))};
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t oy = 0; oy < OH; oy++)
        for (int64_t ox = 0; ox < OW; ox++) {
          double acc = b[m];
          int64_t g = m / Mg;
          for (int64_t c = 0; c < Cg; c++)
            for (int64_t ky = 0; ky < KH; ky++)
              for (int64_t kx = 0; kx < KW; kx++) {
                int64_t iy = oy * stride + ky * dil - pad, ix = ox * stride + kx * dil - pad;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += (double)w[((m * Cg + c) * KH + ky) * KW + kx] * ref::at4(x, n, g * Cg + c, iy, ix);
              }
          y.data[((n * M + m) * OH + oy) * OW + ox] = (float)acc;
        }
  (void)C;
  return y;
}

enum class Tail { None, Relu, Relu6, BNRelu6, Residual };

struct GCase {
  int64_t N, C, H, W, M, G, K, stride, pad, dil;
  Tail tail = Tail::None;
  std::string name() const {
    static const char *tails[] = {"", "_relu", "_relu6", "_bn_relu6", "_res"};
    return "n" + std::to_string(N) + "_c" + std::to_string(C) + "_" + std::to_string(H) + "x" + std::to_string(W) +
           "_m" + std::to_string(M) + "_g" + std::to_string(G) + "_k" + std::to_string(K) + "_s" +
           std::to_string(stride) + "_p" + std::to_string(pad) + "_d" + std::to_string(dil) + tails[(int)tail];
  }
};

class GroupedConv : public ::testing::TestWithParam<GCase> {};

TEST_P(GroupedConv, MatchesReference) {
  const GCase c = GetParam();
  ref::Rng rng(1000 + c.C * 31 + c.M * 7 + c.G);
  Shape ws{c.M, c.C / c.G, c.K, c.K};
  std::vector<float> w = ref::randn(ref::numel(ws), rng, 0.5f), b = ref::randn(c.M, rng, 0.2f);
  Tensor x = ref::random_tensor({c.N, c.C, c.H, c.W}, rng);

  ref::GraphBuilder gb;
  int xi = gb.input("x", x.shape);
  int y = gb.node("Conv", {xi, gb.constant("w", ws, w), gb.constant("b", {c.M}, b)}, [&](qnnc::Node &n) {
    n.set_ints("strides", {c.stride, c.stride});
    n.set_ints("pads", {c.pad, c.pad, c.pad, c.pad});
    n.set_ints("dilations", {c.dil, c.dil});
    n.set_ints("kernel_shape", {c.K, c.K});
    n.set_i("group", c.G);
  });
  Tensor want = grouped_conv(x, w, ws, b, c.G, c.stride, c.pad, c.dil);
  Tensor r;
  std::vector<float> gamma, beta, mean, var;
  if (c.tail == Tail::BNRelu6) {
    gamma = ref::randn(c.M, rng, 0.3f), beta = ref::randn(c.M, rng, 0.3f), mean = ref::randn(c.M, rng, 0.3f);
    var = ref::randn(c.M, rng, 0.3f);
    for (auto &v : var) v = v * v + 0.5f;
    for (auto &g : gamma) g += 1.f;
    y = gb.batchnorm(y, gamma, beta, mean, var, 1e-5f);
    want = ref::batchnorm(want, gamma, beta, mean, var, 1e-5f);
  }
  if (c.tail == Tail::Residual) {
    r = ref::random_tensor(want.shape, rng);
    y = gb.node("Add", {y, gb.input("r", r.shape)});
    want = ref::add(want, r);
  }
  if (c.tail == Tail::Relu) {
    y = gb.node("Relu", {y});
    want = ref::relu(want);
  }
  if (c.tail == Tail::Relu6 || c.tail == Tail::BNRelu6) {
    y = gb.node("Clip", {y}, [](qnnc::Node &n) {
      n.set_f("min", 0.f);
      n.set_f("max", 6.f);
    });
    for (auto &v : want.data) v = std::min(std::max(v, 0.f), 6.f);
  }
  gb.output(y);
  qnnc::Module m = ref::compile(gb.finish());
  // The activation is fused: one kernel step, grouped.
  auto ops = ref::step_ops(m);
  EXPECT_EQ(ref::count(ops, "relu"), 0);
  EXPECT_EQ(ref::count(ops, "add"), 0);
  std::vector<Tensor> in{x};
  if (c.tail == Tail::Residual) in.push_back(r);
  EXPECT_TRUE(ref::Close(m.run(in)[0], want, 1e-5)) << c.name();
  // Depthwise: every way of making tasks and padding, whatever the default for this shape is:
  // row tasks over a padded copy (whole, or each task's rows) or reading the input in place,
  // and channel-block strips of 1, 3 (not dividing the rows: the last strip shifted inward)
  // and more rows than the output has.
  if (c.G == c.C && c.M == c.C) {
    const std::vector<qnnc::Knobs> variants{{{"strip", 0}, {"pad_inline", 0}, {"pad_rows", 0}},
                                            {{"strip", 0}, {"pad_inline", 0}, {"pad_rows", 1}},
                                            {{"strip", 0}, {"pad_inline", 1}},
                                            {{"strip", 1}},
                                            {{"strip", 3}, {"x_tile", 4}},
                                            {{"strip", 112}, {"vec", 8}}};
    for (const auto &v : variants) {
      qnnc::CompileOptions opt;
      opt.knobs["conv2d_grouped"] = v;
      qnnc::Module alt = qnnc::compile(gb.g, opt);
      std::string what;
      for (const auto &[name, value] : v) what += " " + name + "=" + std::to_string(value);
      EXPECT_TRUE(ref::Close(alt.run(in)[0], want, 1e-5)) << c.name() << what;
    }
  }
  // Grouped: 16 and 8 lanes whatever the default, so that groups 16 lanes do not divide (24,
  // 40, 232, 5 or 15 channels) run a last vector past the group's end (its weights padded after
  // the last group), with a task per group, and the input padded whole first or each task's
  // rows (or group) inside the task.
  if (c.G > 1 && c.G != c.C) {
    for (const qnnc::Knobs &v :
         {qnnc::Knobs{{"vec", 16}}, qnnc::Knobs{{"vec", 16}, {"group_tasks", 1}}, qnnc::Knobs{{"vec", 8}, {"x_tile", 3}},
          qnnc::Knobs{{"vec", 8}, {"x_tile", 5}}, qnnc::Knobs{{"pad_rows", 0}, {"group_tasks", 0}},
          qnnc::Knobs{{"pad_rows", 0}, {"group_tasks", 1}}, qnnc::Knobs{{"pad_rows", 1}, {"group_tasks", 0}},
          qnnc::Knobs{{"pad_rows", 1}, {"group_tasks", 1}}}) {
      qnnc::CompileOptions opt;
      opt.knobs["conv2d_grouped"] = v;
      std::string what;
      for (const auto &[name, value] : v) what += " " + name + "=" + std::to_string(value);
      EXPECT_TRUE(ref::Close(qnnc::compile(gb.g, opt).run(in)[0], want, 1e-5)) << c.name() << what;
    }
  }
}

const GCase kCases[] = {
    // depthwise
    {1, 3, 9, 11, 3, 3, 3, 1, 1, 1},
    {1, 7, 8, 8, 7, 7, 3, 2, 1, 1, Tail::Relu6},
    {2, 13, 10, 7, 13, 13, 5, 1, 2, 1, Tail::Relu},
    {1, 32, 14, 14, 32, 32, 3, 1, 1, 1, Tail::BNRelu6},
    {1, 33, 9, 9, 33, 33, 3, 2, 1, 1},
    {1, 17, 12, 12, 17, 17, 3, 1, 2, 2},
    {1, 24, 6, 6, 24, 24, 1, 1, 0, 1, Tail::Residual},
    {1, 40, 7, 7, 40, 40, 7, 1, 3, 1},
    // 5x5 windows over small outputs (strips by default), at stride 2 and dilation 2
    {1, 72, 15, 15, 72, 72, 5, 2, 2, 1, Tail::Relu},
    {2, 20, 11, 9, 20, 20, 5, 1, 4, 2, Tail::Residual},
    // channel multiplier 2 (C = G, M = 2G)
    {1, 8, 7, 7, 16, 8, 3, 1, 1, 1, Tail::Relu},
    // grouped: channels per group 4 (ResNeXt's 32x4d), 3 in / 5 out, 16, and a stride-2 one
    {1, 32, 8, 8, 32, 8, 3, 1, 1, 1, Tail::Relu},
    {2, 9, 6, 5, 15, 3, 3, 2, 1, 1},
    {1, 32, 6, 6, 64, 2, 3, 1, 1, 1, Tail::Residual},
    {1, 24, 9, 9, 24, 3, 1, 1, 0, 1},
    // RegNet's group widths that 16 lanes do not divide: 24 (3 vectors of 8 in one register
    // block), 40 at stride 2 (5 vectors of 8), 232 (15 vectors of 16, the last past the group's
    // end)
    {1, 48, 9, 9, 48, 2, 3, 1, 1, 1, Tail::Relu},
    {1, 120, 9, 9, 120, 3, 3, 2, 1, 1, Tail::Residual},
    {1, 464, 5, 5, 464, 2, 3, 1, 1, 1},
    // 4 groups of 16 into 7 rows (a task per group by default), with a residual, and 5 of 24 at
    // stride 2
    {1, 64, 7, 7, 64, 4, 3, 1, 1, 1, Tail::Residual},
    {2, 120, 11, 9, 120, 5, 3, 2, 1, 1, Tail::Relu},
};

INSTANTIATE_TEST_SUITE_P(Grouped, GroupedConv, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<GCase> &i) { return i.param.name(); });

// The default register block of grouped (not depthwise) layers keeps at least 7 accumulators on
// AVX2 and AVX-512 (FMA latency 4, 2 a cycle: 8 keep both busy), over RegNet's and ResNeXt's
// shapes at 56, 28, 14 and 7 columns: at 14x14 the divisor of the row (2 columns on AVX2) left 4,
// and groups of one vector (ResNeXt's 8 on AVX2) 4 at 28x28.
TEST(GroupedDefaults, RegisterBlockKeepsEightAccumulators) {
  struct L {
    int64_t M, G, OW;
  };
  for (const char *ts : {"x86-64-linux-avx2-fma-f16c-sse41", "x86-64-linux-avx512-avx512_skylake-avx2-fma-f16c-sse41"}) {
    Halide::Target t(ts);
    const int max_acc = t.has_feature(Halide::Target::AVX512) ? 24 : 12;
    for (L l : std::vector<L>{{224, 2, 56}, {448, 4, 28}, {1232, 11, 14}, {3024, 27, 7}, {896, 7, 14},
                              {1344, 8, 14}, {720, 6, 14}, {128, 32, 56}, {256, 32, 28}, {512, 32, 14},
                              {1024, 32, 7}}) {
      for (const char *kind : {"conv2d_grouped", "dwconv2d_q"}) {
        qnnc::KernelSpec s;
        s.kind = kind;
        s.dtype = std::string(kind) == "dwconv2d_q" ? "u8" : "f32";
        s.in_shape = s.out_shape = {1, l.M, l.OW, l.OW};
        s.group = l.G;
        s.kernel = {3, 3};
        s.stride = s.dilation = {1, 1};
        s.pads = {1, 1, 1, 1};
        qnnc::Knobs k = qnnc::default_knobs(s, t);
        if (qnnc::knob(k, "quads", 0)) continue;  // VNNI quads: their own column cap
        const int64_t Mg = l.M / l.G, vw = std::min<int64_t>(k["vec"], Mg), nv = (Mg + vw - 1) / vw;
        const int xs = (int)std::min<int64_t>(k["x_tile"], l.OW);
        EXPECT_GE(qnnc::grouped_block_vectors((int)nv, xs, max_acc) * xs, 7)
            << ts << " " << kind << " M=" << l.M << " G=" << l.G << " OW=" << l.OW << ": x_tile " << xs;
      }
    }
  }
}

// fp32 on AVX2, groups of 2 or more vectors: also column counts that do not divide the row
// (RegNet's groups of 112 at 14x14: 2 vectors by 5 columns, the last tile shifted inward), with
// weights streamed from L2 at half the rate AVX-512's estimate assumes. Groups
// of one vector, the integer kernel and AVX-512 keep the rule of the test above.
TEST(GroupedDefaults, Avx2Fp32TakesColumnsThatDoNotDivideTheRow) {
  auto knobs = [](const char *ts, const char *kind, int64_t M, int64_t G, int64_t OW) {
    qnnc::KernelSpec s;
    s.kind = kind;
    s.dtype = std::string(kind) == "dwconv2d_q" ? "u8" : "f32";
    s.in_shape = s.out_shape = {1, M, OW, OW};
    s.group = G;
    s.kernel = {3, 3};
    s.pads = {1, 1, 1, 1};
    return qnnc::default_knobs(s, Halide::Target(ts));
  };
  const char *avx2 = "x86-64-linux-avx2-fma-f16c-sse41", *avx512 = "x86-64-linux-avx512-avx512_skylake-avx2-fma-f16c-sse41";
  EXPECT_EQ(knobs(avx2, "conv2d_grouped", 1232, 11, 14)["x_tile"], 5);
  EXPECT_EQ(knobs(avx2, "conv2d_grouped", 512, 32, 14)["x_tile"], 5);  // ResNeXt-50's groups of 16
  EXPECT_EQ(knobs(avx2, "conv2d_grouped", 256, 32, 28)["x_tile"], 7);  // groups of 8: one vector
  // RegNet-X-3.2GF's groups of 48 (83 kB of weights): not 6 vectors x 2 columns, whose 6 weight
  // vectors a step stream from L2.
  EXPECT_GE(knobs(avx2, "conv2d_grouped", 432, 9, 14)["x_tile"], 3);
  EXPECT_EQ(knobs(avx2, "dwconv2d_q", 1232, 11, 14)["x_tile"], 4);
  EXPECT_EQ(14 % knobs(avx512, "conv2d_grouped", 1232, 11, 14)["x_tile"], 0);
}

// A standalone Clip(0, 6) (its producer is not a kernel it can fuse into) runs as a bounded ReLU.
TEST(Clip, StandaloneRelu6) {
  ref::GraphBuilder gb;
  int x = gb.input("x", {2, 19});
  gb.output(gb.node("Clip", {x}, [](qnnc::Node &n) {
    n.set_f("min", 0.f);
    n.set_f("max", 6.f);
  }));
  qnnc::Module m = ref::compile(gb.finish());
  Tensor in = qnnc::random_tensor({2, 19}, 3);
  for (auto &v : in.data) v *= 8;
  Tensor want = in;
  for (auto &v : want.data) v = std::min(std::max(v, 0.f), 6.f);
  EXPECT_TRUE(ref::Close(m.run({in})[0], want, 0.0));
}

}  // namespace
