// Shape operators and the transformer-style ops against naive references: transposes of
// ranks 2-5 from NCHW and NHWC producers (views and real copies), strided and reversed
// slices, ShuffleNet's channel shuffle, layer normalization (opset 17 node and the decomposed
// form), GELU/erf, and dense layers over the last axis of 3-D and 4-D tensors. Odd extents
// everywhere, batch 2.
#include <cmath>
#include <numeric>

#include <gtest/gtest.h>

#include "reference.h"

namespace {

using qnnc::Tensor;
using ref::Shape;

// Row-major strides of a shape.
std::vector<int64_t> strides_of(const Shape &s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

// Calls f(index) for every multi-index of shape s in row-major order.
template <typename F>
void for_each_index(const Shape &s, F f) {
  std::vector<int64_t> i(s.size(), 0);
  for (int64_t k = 0, n = ref::numel(s); k < n; k++) {
    f(i);
    for (size_t d = s.size(); d-- > 0;) {
      if (++i[d] < s[d]) break;
      i[d] = 0;
    }
  }
}

Tensor transpose_ref(const Tensor &x, const std::vector<int64_t> &perm) {
  Shape os;
  for (int64_t p : perm) os.push_back(x.shape[p]);
  auto xs = strides_of(x.shape);
  Tensor y{os, {}};
  for_each_index(os, [&](const std::vector<int64_t> &i) {
    int64_t at = 0;
    for (size_t d = 0; d < perm.size(); d++) at += i[d] * xs[perm[d]];
    y.data.push_back(x.data[at]);
  });
  return y;
}

Tensor slice_ref(const Tensor &x, const std::vector<int64_t> &starts, const std::vector<int64_t> &steps,
                 const Shape &sizes) {
  auto xs = strides_of(x.shape);
  Tensor y{sizes, {}};
  for_each_index(sizes, [&](const std::vector<int64_t> &i) {
    int64_t at = 0;
    for (size_t d = 0; d < i.size(); d++) at += (starts[d] + i[d] * steps[d]) * xs[d];
    y.data.push_back(x.data[at]);
  });
  return y;
}

// A 1x1 max pool: an identity that makes the pass give its output the NHWC layout.
int nhwc_identity(ref::GraphBuilder &gb, int x) { return gb.maxpool(x, {1, 1}, {1, 1}, {0, 0, 0, 0}); }

TEST(Transpose, MatchesReference) {
  struct Case {
    Shape x;
    std::vector<int64_t> perm;
    bool from_nhwc;
  };
  const Case cases[] = {
      {{5, 7}, {1, 0}, false},
      {{3, 5, 7}, {2, 0, 1}, false},
      {{2, 5, 3, 7}, {0, 2, 3, 1}, false},
      {{2, 5, 3, 7}, {3, 1, 0, 2}, false},
      {{2, 5, 3, 7}, {0, 2, 3, 1}, true},  // NHWC -> [N, H, W, C]: a view
      {{2, 5, 3, 7}, {0, 3, 1, 2}, true},
      {{2, 5, 3, 7}, {1, 0, 2, 3}, true},
      {{1, 9, 1, 5}, {0, 3, 2, 1}, true},
      {{2, 3, 4, 5, 3}, {0, 2, 1, 3, 4}, false},
  };
  ref::Rng rng(21);
  for (const auto &c : cases) {
    Tensor x = ref::random_tensor(c.x, rng);
    ref::GraphBuilder gb;
    int v = gb.input("x", c.x);
    if (c.from_nhwc) v = nhwc_identity(gb, v);
    gb.output(gb.node("Transpose", {v}, [&](qnnc::Node &n) { n.set_ints("perm", c.perm); }));
    qnnc::Module m = ref::compile(gb.finish());
    EXPECT_TRUE(ref::Close(m.run({x})[0], transpose_ref(x, c.perm), 0))
        << ref::shape_str(c.x) << " perm " << ref::shape_str(c.perm) << (c.from_nhwc ? " from NHWC" : "");
  }
}

// [N, H, W, C] views of an NHWC tensor and back cost no kernel (ConvNeXt's permutes).
TEST(Transpose, PermutesAroundChannelsLastAreViews) {
  ref::GraphBuilder gb;
  Shape s{2, 6, 5, 3};
  int x = nhwc_identity(gb, gb.input("x", s));
  int t = gb.node("Transpose", {x}, [](qnnc::Node &n) { n.set_ints("perm", {0, 2, 3, 1}); });
  int r = gb.node("Relu", {t});
  int b = gb.node("Transpose", {r}, [](qnnc::Node &n) { n.set_ints("perm", {0, 3, 1, 2}); });
  gb.output(nhwc_identity(gb, b));
  qnnc::Module m = ref::compile(gb.finish());
  auto ops = ref::step_ops(m);
  EXPECT_EQ(ref::count(ops, "transpose"), 2);
  int kernels = 0;
  for (const auto &st : m.manifest()["steps"])
    if (st["op"] == "transpose" && !st["alias"].get<bool>()) kernels++;
  EXPECT_EQ(kernels, 0);
  ref::Rng rng(3);
  Tensor xin = ref::random_tensor(s, rng);
  EXPECT_TRUE(ref::Close(m.run({xin})[0], ref::relu(xin), 0));
}

// Flatten at any axis and Reshape of an NHWC tensor see the logical (row-major) order.
TEST(Reshape, OfNhwcTensorIsRowMajor) {
  Shape s{2, 3, 4, 5};
  ref::Rng rng(27);
  Tensor x = ref::random_tensor(s, rng);
  for (int64_t axis : {1, 2, 3}) {
    ref::GraphBuilder gb;
    int v = nhwc_identity(gb, gb.input("x", s));
    gb.output(gb.node("Flatten", {v}, [&](qnnc::Node &n) { n.set_i("axis", axis); }));
    qnnc::Module m = ref::compile(gb.finish());
    Tensor want = x;
    int64_t a = 1;
    for (int64_t d = 0; d < axis; d++) a *= s[d];
    want.shape = {a, ref::numel(s) / a};
    EXPECT_TRUE(ref::Close(m.run({x})[0], want, 0)) << "axis " << axis;
  }
  ref::GraphBuilder gb;
  int v = nhwc_identity(gb, gb.input("x", s));
  int r = gb.node("Reshape", {v}, [&](qnnc::Node &n) { n.set_ints("shape", {6, 20, 1, 1}); });
  gb.output(nhwc_identity(gb, r));
  qnnc::Module m = ref::compile(gb.finish());
  Tensor want = x;
  want.shape = {6, 20, 1, 1};
  EXPECT_TRUE(ref::Close(m.run({x})[0], want, 0));
}

TEST(Slice, MatchesReference) {
  struct Case {
    Shape x;
    std::vector<int64_t> starts, steps;
    Shape sizes;
    bool from_nhwc;
  };
  const Case cases[] = {
      {{2, 11, 5, 7}, {0, 0, 0, 0}, {1, 1, 1, 1}, {2, 5, 5, 7}, true},  // ShuffleNet's halves
      {{2, 11, 5, 7}, {0, 5, 0, 0}, {1, 1, 1, 1}, {2, 6, 5, 7}, true},
      {{2, 11, 5, 7}, {1, 3, 1, 6}, {1, 2, 2, -2}, {1, 4, 2, 4}, true},
      {{2, 11, 5, 7}, {0, 10, 4, 0}, {1, -3, -1, 3}, {2, 4, 5, 3}, false},
      {{3, 17}, {1, 2}, {1, 5}, {2, 3}, false},
      {{4, 3, 9}, {3, 0, 8}, {-1, 1, -2}, {4, 3, 5}, false},
  };
  ref::Rng rng(22);
  for (const auto &c : cases) {
    Tensor x = ref::random_tensor(c.x, rng);
    ref::GraphBuilder gb;
    int v = gb.input("x", c.x);
    if (c.from_nhwc) v = nhwc_identity(gb, v);
    gb.output(gb.node("Slice", {v}, [&](qnnc::Node &n) {
      n.set_ints("starts", c.starts);
      n.set_ints("steps", c.steps);
      n.set_ints("sizes", c.sizes);
    }));
    qnnc::Module m = ref::compile(gb.finish());
    EXPECT_TRUE(ref::Close(m.run({x})[0], slice_ref(x, c.starts, c.steps, c.sizes), 0))
        << ref::shape_str(c.x) << " starts " << ref::shape_str(c.starts) << " steps " << ref::shape_str(c.steps);
  }
}

TEST(Slice, OutOfRangeIsRefused) {
  ref::GraphBuilder gb;
  int v = gb.input("x", {1, 4, 3, 3});
  gb.node("Slice", {v}, [&](qnnc::Node &n) {
    n.set_ints("starts", {0, 2, 0, 0});
    n.set_ints("steps", {1, 1, 1, 1});
    n.set_ints("sizes", {1, 3, 3, 3});
  });
  EXPECT_THROW(gb.finish(), qnnc::Error);
}

// Constant padding: out[i] = x[i - begins] inside x, `value` outside; negative pads crop.
Tensor pad_ref(const Tensor &x, const std::vector<int64_t> &pads, float value) {
  const size_t r = x.shape.size();
  Shape os;
  for (size_t d = 0; d < r; d++) os.push_back(x.shape[d] + pads[d] + pads[d + r]);
  auto xs = strides_of(x.shape);
  Tensor y{os, {}};
  for_each_index(os, [&](const std::vector<int64_t> &i) {
    int64_t at = 0;
    bool inside = true;
    for (size_t d = 0; d < r; d++) {
      int64_t j = i[d] - pads[d];
      inside = inside && j >= 0 && j < x.shape[d];
      at += j * xs[d];
    }
    y.data.push_back(inside ? x.data[at] : value);
  });
  return y;
}

TEST(Pad, MatchesReference) {
  struct Case {
    Shape x;
    std::vector<int64_t> pads;  // begins, then ends
    float value;
    bool from_nhwc;
  };
  const Case cases[] = {
      {{1, 5, 5, 3}, {0, 0, 0, 0, 0, 2, 2, 0}, 0.f, false},  // Swin: H and W of [N, H, W, C]
      {{2, 5, 3, 7}, {0, 1, 0, 2, 1, 0, 3, 0}, 0.f, true},
      {{2, 5, 3, 7}, {0, 0, 1, 1, 0, 0, 1, 1}, -2.5f, true},  // spatial, but not zero: a pad kernel
      {{3, 17}, {2, -3, 1, 4}, 0.75f, false},                 // crop and pad on one axis
      {{4, 3, 9}, {0, 0, 0, 0, 0, 5}, 0.f, false},
      {{2, 3, 4, 5, 3}, {1, 0, 2, 0, 1, 0, 1, 0, 3, 0}, 1.f, false},
  };
  ref::Rng rng(29);
  for (const auto &c : cases) {
    Tensor x = ref::random_tensor(c.x, rng);
    ref::GraphBuilder gb;
    int v = gb.input("x", c.x);
    if (c.from_nhwc) v = nhwc_identity(gb, v);
    gb.output(gb.node("Pad", {v}, [&](qnnc::Node &n) {
      n.set_ints("pads", c.pads);
      n.set_f("value", c.value);
    }));
    qnnc::Module m = ref::compile(gb.finish());
    EXPECT_EQ(ref::count(ref::step_ops(m), "pad"), 1);
    EXPECT_TRUE(ref::Close(m.run({x})[0], pad_ref(x, c.pads, c.value), 0))
        << ref::shape_str(c.x) << " pads " << ref::shape_str(c.pads) << (c.from_nhwc ? " from NHWC" : "");
  }
}

// A zero spatial Pad that a convolution cannot absorb (two readers) runs as a pad kernel.
TEST(Pad, UnfusablePadRunsAsKernel) {
  Shape s{1, 4, 5, 6};
  ref::GraphBuilder gb;
  int x = gb.input("x", s);
  int p = gb.node("Pad", {x}, [](qnnc::Node &n) { n.set_ints("pads", {0, 0, 1, 2, 0, 0, 1, 0}); });
  int a = gb.maxpool(p, {1, 1}, {1, 1}, {0, 0, 0, 0});
  gb.output(gb.node("Add", {a, gb.node("Relu", {p})}));
  qnnc::Module m = ref::compile(gb.finish());
  EXPECT_EQ(ref::count(ref::step_ops(m), "pad"), 1);
  ref::Rng rng(30);
  Tensor xin = ref::random_tensor(s, rng);
  Tensor padded = pad_ref(xin, {0, 0, 1, 2, 0, 0, 1, 0}, 0.f);
  EXPECT_TRUE(ref::Close(m.run({xin})[0], ref::add(padded, ref::relu(padded)), 1e-6));
}

// Reshape [N, C, H, W] -> [N, G, C/G, H, W], Transpose(0, 2, 1, 3, 4), Reshape back: one step.
TEST(ChannelShuffle, FusesAndMatchesReference) {
  for (int64_t G : {2, 3}) {
    Shape s{2, G * 5, 5, 3};
    ref::GraphBuilder gb;
    int x = nhwc_identity(gb, gb.input("x", s));
    int r1 = gb.node("Reshape", {x}, [&](qnnc::Node &n) { n.set_ints("shape", {s[0], G, s[1] / G, s[2], s[3]}); });
    int t = gb.node("Transpose", {r1}, [](qnnc::Node &n) { n.set_ints("perm", {0, 2, 1, 3, 4}); });
    int r2 = gb.node("Reshape", {t}, [&](qnnc::Node &n) { n.set_ints("shape", s); });
    gb.output(nhwc_identity(gb, r2));
    qnnc::Module m = ref::compile(gb.finish());
    auto ops = ref::step_ops(m);
    EXPECT_EQ(ref::count(ops, "channel_shuffle"), 1);
    EXPECT_EQ(ref::count(ops, "transpose") + ref::count(ops, "reshape"), 0);
    ref::Rng rng(23);
    Tensor xin = ref::random_tensor(s, rng);
    Tensor want{s, std::vector<float>(xin.data.size())};
    const int64_t C = s[1], HW = s[2] * s[3];
    for (int64_t n = 0; n < s[0]; n++)
      for (int64_t c = 0; c < C; c++) {
        int64_t src = (c % G) * (C / G) + c / G;  // output channel j*G + i reads input i*C/G + j
        for (int64_t p = 0; p < HW; p++) want.data[(n * C + c) * HW + p] = xin.data[(n * C + src) * HW + p];
      }
    EXPECT_TRUE(ref::Close(m.run({xin})[0], want, 0)) << "groups " << G;
  }
}

Tensor layernorm_ref(const Tensor &x, const std::vector<float> &g, const std::vector<float> &b, float eps) {
  const int64_t K = x.shape.back(), R = ref::numel(x.shape) / K;
  Tensor y = x;
  for (int64_t r = 0; r < R; r++) {
    double mean = 0, var = 0;
    for (int64_t k = 0; k < K; k++) mean += x.data[r * K + k];
    mean /= K;
    for (int64_t k = 0; k < K; k++) var += (x.data[r * K + k] - mean) * (x.data[r * K + k] - mean);
    var /= K;
    for (int64_t k = 0; k < K; k++)
      y.data[r * K + k] = (float)((x.data[r * K + k] - mean) / std::sqrt(var + eps) * g[k] + b[k]);
  }
  return y;
}

TEST(LayerNorm, MatchesReference) {
  const Shape shapes[] = {{2, 37}, {2, 5, 13}, {2, 3, 7, 24}, {1, 4, 3, 9}};
  ref::Rng rng(24);
  for (const auto &s : shapes) {
    const int64_t K = s.back();
    Tensor x = ref::random_tensor(s, rng, 3.f);
    for (auto &e : x.data) e += 2.f;  // a mean far from 0
    auto g = ref::randn(K, rng), b = ref::randn(K, rng);
    ref::GraphBuilder gb;
    int v = gb.input("x", s);
    int gv = gb.constant("g", {K}, g), bv = gb.constant("b", {K}, b);
    gb.output(gb.node("LayerNorm", {v, gv, bv}, [](qnnc::Node &n) { n.set_f("epsilon", 1e-5f); }));
    qnnc::Module m = ref::compile(gb.finish());
    EXPECT_TRUE(ref::Close(m.run({x})[0], layernorm_ref(x, g, b, 1e-5f), 1e-5)) << ref::shape_str(s);
  }
}

// ReduceMean, Sub, Pow (as Mul), ReduceMean, Add(eps), Sqrt, Div, Mul(gamma), Add(beta), as
// opsets before 17 export a layer norm, over the channels of an NHWC tensor (ConvNeXt's
// LayerNorm2d: permute, normalize, permute back): one layernorm step, no transposes.
TEST(LayerNorm, DecomposedFormFuses) {
  Shape s{2, 11, 4, 3};
  const int64_t C = s[1];
  ref::Rng rng(25);
  auto g = ref::randn(C, rng), b = ref::randn(C, rng);
  ref::GraphBuilder gb;
  int x = nhwc_identity(gb, gb.input("x", s));
  int t = gb.node("Transpose", {x}, [](qnnc::Node &n) { n.set_ints("perm", {0, 2, 3, 1}); });
  auto mean = [&](int v) { return gb.node("ReduceMean", {v}, [](qnnc::Node &n) { n.set_ints("axes", {3}); }); };
  int d = gb.node("Sub", {t, mean(t)});
  int var = mean(gb.node("Mul", {d, d}));
  int sd = gb.node("Sqrt", {gb.node("Add", {var, gb.constant("eps", {1}, {1e-6f})})});
  int y = gb.node("Add", {gb.node("Mul", {gb.node("Div", {d, sd}), gb.constant("g", {C}, g)}), gb.constant("b", {C}, b)});
  int back = gb.node("Transpose", {y}, [](qnnc::Node &n) { n.set_ints("perm", {0, 3, 1, 2}); });
  gb.output(nhwc_identity(gb, back));
  qnnc::Module m = ref::compile(gb.finish());
  auto ops = ref::step_ops(m);
  EXPECT_EQ(ref::count(ops, "layernorm"), 1);
  EXPECT_EQ(ref::count(ops, "binary") + ref::count(ops, "unary") + ref::count(ops, "layout"), 2);  // in/out NCHW
  Tensor xin = ref::random_tensor(s, rng);
  Tensor want = transpose_ref(layernorm_ref(transpose_ref(xin, {0, 2, 3, 1}), g, b, 1e-6f), {0, 3, 1, 2});
  EXPECT_TRUE(ref::Close(m.run({xin})[0], want, 1e-5));
}

// x * 0.5 * (1 + erf(x / sqrt 2)) becomes one unary gelu; erf itself to ~1e-7 absolute.
TEST(Gelu, FusesAndMatchesReference) {
  Shape s{2, 3, 41};
  ref::GraphBuilder gb;
  int x = gb.input("x", s);
  int e = gb.node("Erf", {gb.node("Div", {x, gb.constant("sqrt2", {}, {std::sqrt(2.f)})})});
  int h = gb.node("Mul", {gb.node("Mul", {x, gb.node("Add", {e, gb.constant("one", {}, {1.f})})}),
                          gb.constant("half", {}, {0.5f})});
  gb.output(h);
  qnnc::Module m = ref::compile(gb.finish());
  EXPECT_EQ(ref::step_ops(m), std::vector<std::string>{"unary"});
  EXPECT_EQ(m.manifest()["steps"][0]["spec"]["fn"], "gelu");
  Tensor xin{s, {}};
  for (int64_t i = 0; i < ref::numel(s); i++) xin.data.push_back(-6.f + 12.f * (float)i / (float)(ref::numel(s) - 1));
  Tensor want = xin;
  for (auto &v : want.data) v = (float)(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
  Tensor got = m.run({xin})[0];
  double worst = 0;
  for (size_t i = 0; i < got.data.size(); i++) worst = std::max(worst, (double)std::fabs(got.data[i] - want.data[i]));
  EXPECT_LT(worst, 2e-6);

  ref::GraphBuilder eb;
  eb.output(eb.node("Erf", {eb.input("x", s)}));
  qnnc::Module em = ref::compile(eb.finish());
  Tensor ey = em.run({xin})[0];
  worst = 0;
  for (size_t i = 0; i < ey.data.size(); i++) worst = std::max(worst, std::fabs(ey.data[i] - std::erf((double)xin.data[i])));
  EXPECT_LT(worst, 5e-7);
}

// SQNR in dB of y against the reference x, both centered on their own means.
double centered_sqnr_db(const Tensor &x, const Tensor &y) {
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.data.size(); i++) mx += x.data[i], my += y.data[i];
  mx /= x.data.size(), my /= y.data.size();
  double sig = 0, err = 0;
  for (size_t i = 0; i < x.data.size(); i++) {
    const double a = x.data[i] - mx, b = y.data[i] - my;
    sig += a * a, err += (a - b) * (a - b);
  }
  return 10 * std::log10(sig / err);
}

// MatMul with constant weights over the last axis of a 3-D or 4-D tensor (transformer MLPs,
// ConvNeXt's pointwise layers) runs as a 1x1 convolution.
TEST(DenseLastAxis, MatchesReference) {
  const Shape shapes[] = {{2, 5, 13}, {2, 3, 7, 19}, {1, 1, 9, 8}, {17, 1, 12}, {23, 10}, {3, 10}};
  ref::Rng rng(26);
  for (const auto &s : shapes) {
    const int64_t K = s.back(), M = 11, R = ref::numel(s) / K;
    Tensor x = ref::random_tensor(s, rng);
    auto w = ref::randn(M * K, rng), bias = ref::randn(M, rng);
    ref::GraphBuilder gb;
    int v = gb.input("x", s);
    gb.output(gb.gemm(v, gb.constant("w", {M, K}, w), gb.constant("b", {M}, bias)));
    qnnc::Module m = ref::compile(gb.finish());
    Tensor flat{{R, K}, x.data};
    Tensor want = ref::dense(flat, w, M, &bias);
    Shape os = s;
    os.back() = M;
    want.shape = os;
    EXPECT_TRUE(ref::Close(m.run({x})[0], want, 1e-5)) << ref::shape_str(s);
    // Over a 3-D input or many rows, the layer is a 1x1 convolution of all rows as one row of
    // pixels (tiles over the rows), whatever the leading dimensions. (A 4-D input is an image,
    // ConvNeXt's: its convolution keeps the image's rows.)
    if (s.size() == 3 || (s.size() == 2 && R >= 8)) {
      int as_row = 0;
      for (const auto &st : m.manifest()["steps"])
        if (st.contains("spec") && st["spec"].value("kind", "") == "conv2d" &&
            st["spec"]["in_shape"] == std::vector<int64_t>{1, K, 1, R})
          as_row++;
      EXPECT_EQ(as_row, 1) << ref::shape_str(s);
    }
  }
}

// ConvNeXt's pointwise block: conv -> permute to [N, H, W, C] -> dense -> dense -> permute back.
// The 4-D dense layers run as 1x1 convolutions whose permutes are views (no layout step inside
// the block), in fp32 (to 1e-5) and in int8 as integer 1x1 convolutions (conv2d_q, none kept
// fp32; centered SQNR against fp32 above 25 dB on random weights).
TEST(DenseLastAxis, FourDRunsAsConvolutionInFp32AndInt8) {
  const Shape xs{1, 12, 6, 7};
  const int64_t C = 12, M = 20;
  ref::Rng rng(31);
  ref::GraphBuilder gb;
  const auto cw = ref::randn(C * C, rng), cb = ref::randn(C, rng), w1 = ref::randn(M * C, rng),
             b1 = ref::randn(M, rng), w2 = ref::randn(C * M, rng), b2 = ref::randn(C, rng);
  int x = gb.input("x", xs);
  int c = gb.conv(x, gb.constant("cw", {C, C, 1, 1}, cw), gb.constant("cb", {C}, cb), {1, 1}, {0, 0, 0, 0}, {1, 1});
  auto perm = [](std::vector<int64_t> p) { return [p](qnnc::Node &n) { n.set_ints("perm", p); }; };
  int t = gb.node("Transpose", {c}, perm({0, 2, 3, 1}));
  int d1 = gb.gemm(t, gb.constant("w1", {M, C}, w1), gb.constant("b1", {M}, b1));
  int d2 = gb.gemm(d1, gb.constant("w2", {C, M}, w2), gb.constant("b2", {C}, b2));
  gb.output(gb.node("Transpose", {d2}, perm({0, 3, 1, 2})));
  qnnc::Graph g = gb.finish();
  Tensor xin = ref::random_tensor(xs, rng);
  // Reference: the conv, then the two dense layers on each pixel's channels.
  Tensor pix = transpose_ref(ref::conv2d(xin, cw, {C, C, 1, 1}, &cb, {1, 1}, {0, 0, 0, 0}, {1, 1}), {0, 2, 3, 1});
  const int64_t P = ref::numel(pix.shape) / C;
  Tensor h = ref::dense(ref::dense(Tensor{{P, C}, pix.data}, w1, M, &b1), w2, C, &b2);
  Tensor want = transpose_ref(Tensor{{xs[0], xs[2], xs[3], C}, h.data}, {0, 3, 1, 2});
  qnnc::Module f = ref::compile(g);
  auto ops = ref::step_ops(f);
  EXPECT_EQ(ref::count(ops, "conv2d"), 3);
  EXPECT_EQ(ref::count(ops, "dense"), 0);
  EXPECT_EQ(ref::count(ops, "layout"), 2);  // the NCHW input and output only
  EXPECT_TRUE(ref::Close(f.run({xin})[0], want, 1e-5));
  qnnc::CompileOptions opt;
  opt.quantize = true;
  opt.qconfig = qnnc::QConfig::parse_precision("int8");
  opt.qconfig.skip_first_conv = false;
  qnnc::Module q = qnnc::compile(g, opt);
  auto qops = ref::step_ops(q);
  EXPECT_EQ(ref::count(qops, "conv2d_q"), 3);
  EXPECT_EQ(ref::count(qops, "dense") + ref::count(qops, "conv2d"), 0);
  EXPECT_GT(centered_sqnr_db(f.run({xin})[0], q.run({xin})[0]), 25.0);
}

// ConvNeXt's MLP with its GELU: dense -> GELU -> dense over the last axis of a permuted 4-D
// tensor. The GELU sits after the first convolution's back-permute; it moves into that
// convolution's epilogue (an elementwise function commutes with the permute), so no unary step
// is left, and the result matches the reference to 1e-5.
TEST(DenseLastAxis, GeluAfterThePermuteFusesIntoTheConvolution) {
  const Shape xs{2, 9, 5, 6};
  const int64_t C = 9, M = 22;
  ref::Rng rng(37);
  const auto w1 = ref::randn(M * C, rng), b1 = ref::randn(M, rng), w2 = ref::randn(C * M, rng), b2 = ref::randn(C, rng);
  ref::GraphBuilder gb;
  auto perm = [](std::vector<int64_t> p) { return [p](qnnc::Node &n) { n.set_ints("perm", p); }; };
  int t = gb.node("Transpose", {gb.input("x", xs)}, perm({0, 2, 3, 1}));
  int d1 = gb.node("Gelu", {gb.gemm(t, gb.constant("w1", {M, C}, w1), gb.constant("b1", {M}, b1))});
  int d2 = gb.gemm(d1, gb.constant("w2", {C, M}, w2), gb.constant("b2", {C}, b2));
  gb.output(gb.node("Transpose", {d2}, perm({0, 3, 1, 2})));
  qnnc::Module m = ref::compile(gb.finish());
  auto ops = ref::step_ops(m);
  EXPECT_EQ(ref::count(ops, "conv2d"), 2);
  EXPECT_EQ(ref::count(ops, "unary"), 0);
  int fused = 0;
  for (const auto &st : m.manifest()["steps"])
    fused += st.contains("spec") && st["spec"].is_object() && st["spec"].value("act", std::string()) == "gelu";
  EXPECT_EQ(fused, 1);
  Tensor xin = ref::random_tensor(xs, rng);
  Tensor pix = transpose_ref(xin, {0, 2, 3, 1});
  const int64_t P = ref::numel(pix.shape) / C;
  Tensor h = ref::dense(Tensor{{P, C}, pix.data}, w1, M, &b1);
  for (auto &v : h.data) v = (float)(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
  h = ref::dense(h, w2, C, &b2);
  Tensor want = transpose_ref(Tensor{{xs[0], xs[2], xs[3], C}, h.data}, {0, 3, 1, 2});
  EXPECT_TRUE(ref::Close(m.run({xin})[0], want, 1e-5));
}

// A transformer's MLP over tokens [A, B, K]: dense -> GELU -> dense over a 3-D tensor. Both
// layers run as 1x1 convolutions of all tokens as one row (views in and out, no layout or dense
// step), the GELU in the first one's epilogue, matching the reference to 1e-5; in int8 both are
// integer 1x1 convolutions (none kept fp32), centered SQNR against fp32 above 20 dB.
TEST(DenseLastAxis, TokensRunAsConvolutionInFp32AndInt8) {
  const Shape xs{3, 7, 10};
  const int64_t K = 10, M = 24, R = 21;
  ref::Rng rng(41);
  const auto w1 = ref::randn(M * K, rng), b1 = ref::randn(M, rng), w2 = ref::randn(K * M, rng), b2 = ref::randn(K, rng);
  ref::GraphBuilder gb;
  int d1 = gb.node("Gelu", {gb.gemm(gb.input("x", xs), gb.constant("w1", {M, K}, w1), gb.constant("b1", {M}, b1))});
  gb.output(gb.gemm(d1, gb.constant("w2", {K, M}, w2), gb.constant("b2", {K}, b2)));
  qnnc::Graph g = gb.finish();
  qnnc::Module f = ref::compile(g);
  auto ops = ref::step_ops(f);
  EXPECT_EQ(ref::count(ops, "conv2d"), 2);
  EXPECT_EQ(ref::count(ops, "dense") + ref::count(ops, "unary") + ref::count(ops, "layout"), 0);
  Tensor xin = ref::random_tensor(xs, rng);
  Tensor h = ref::dense(Tensor{{R, K}, xin.data}, w1, M, &b1);
  for (auto &v : h.data) v = (float)(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
  Tensor want = ref::dense(h, w2, K, &b2);
  want.shape = {3, 7, K};
  Tensor yf = f.run({xin})[0];
  EXPECT_TRUE(ref::Close(yf, want, 1e-5));
  qnnc::CompileOptions opt;
  opt.quantize = true;
  opt.qconfig = qnnc::QConfig::parse_precision("int8");
  opt.qconfig.skip_first_conv = false;  // (here the first layer; in ViT the patch convolution is)
  qnnc::Module q = qnnc::compile(g, opt);
  auto qops = ref::step_ops(q);
  EXPECT_EQ(ref::count(qops, "conv2d_q"), 2);
  EXPECT_EQ(ref::count(qops, "dense") + ref::count(qops, "conv2d"), 0);
  EXPECT_GT(centered_sqnr_db(yf, q.run({xin})[0]), 20.0);
}

// Softmax over the last axis, with large logits (the max is subtracted first).
TEST(Softmax, MatchesReference) {
  const Shape shapes[] = {{2, 3, 17}, {5, 1}, {2, 2, 3, 33}};
  ref::Rng rng(28);
  for (const auto &s : shapes) {
    Tensor x = ref::random_tensor(s, rng, 20.f);
    ref::GraphBuilder gb;
    gb.output(gb.node("Softmax", {gb.input("x", s)}));
    qnnc::Module m = ref::compile(gb.finish());
    const int64_t K = s.back(), R = ref::numel(s) / K;
    Tensor want = x;
    for (int64_t r = 0; r < R; r++) {
      double mx = -1e30, sum = 0;
      for (int64_t k = 0; k < K; k++) mx = std::max(mx, (double)x.data[r * K + k]);
      for (int64_t k = 0; k < K; k++) sum += std::exp(x.data[r * K + k] - mx);
      for (int64_t k = 0; k < K; k++) want.data[r * K + k] = (float)(std::exp(x.data[r * K + k] - mx) / sum);
    }
    EXPECT_TRUE(ref::Close(m.run({x})[0], want, 1e-6)) << ref::shape_str(s);
  }
}

// Batched product of two activations (attention's Q K^T and P V), from a transpose. Register
// tiles of several rows by vectors of columns: rows and columns that the tile does not divide
// (its last tiles shift inward), fewer rows or columns than one tile, and other tile shapes.
TEST(MatMul, TwoActivationsMatchReference) {
  struct Case {
    Shape a;
    int64_t N;
    int rows = 0, col_vectors = 0;  // 0: the default
  };
  const Case cases[] = {{{2, 5, 7}, 3},           {{3, 2, 9, 16}, 19},        {{1, 17}, 1},
                        {{3, 13, 10}, 21},        {{2, 37, 24}, 45},          {{4, 29, 33}, 64},
                        {{2, 13, 10}, 21, 4, 3},  {{1, 11, 9}, 40, 1, 4},     {{2, 9, 5}, 17, 8, 1}};
  ref::Rng rng(29);
  for (const auto &c : cases) {
    const int64_t K = c.a.back(), M = c.a[c.a.size() - 2], B = ref::numel(c.a) / (M * K);
    Shape bt = c.a;  // b is given transposed, [.., N, K], and transposed in the graph
    bt[bt.size() - 2] = c.N;
    Tensor a = ref::random_tensor(c.a, rng), b = ref::random_tensor(bt, rng);
    ref::GraphBuilder gb;
    int av = gb.input("a", c.a), bv = gb.input("b", bt);
    std::vector<int64_t> perm;
    for (size_t d = 0; d + 2 < bt.size(); d++) perm.push_back((int64_t)d);
    perm.push_back((int64_t)bt.size() - 1);
    perm.push_back((int64_t)bt.size() - 2);
    int tb = gb.node("Transpose", {bv}, [&](qnnc::Node &n) { n.set_ints("perm", perm); });
    gb.output(gb.node("MatMul", {av, tb}));
    qnnc::CompileOptions opt;
    if (c.rows) opt.knobs["matmul"]["rows"] = c.rows;
    if (c.col_vectors) opt.knobs["matmul"]["col_vectors"] = c.col_vectors;
    qnnc::Module m = qnnc::compile(gb.finish(), opt);
    Shape os = c.a;
    os.back() = c.N;
    Tensor want{os, std::vector<float>((size_t)(B * M * c.N))};
    for (int64_t x = 0; x < B; x++)
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < c.N; j++) {
          double acc = 0;
          for (int64_t k = 0; k < K; k++) acc += (double)a.data[(x * M + i) * K + k] * b.data[(x * c.N + j) * K + k];
          want.data[(x * M + i) * c.N + j] = (float)acc;
        }
    EXPECT_TRUE(ref::Close(m.run({a, b})[0], want, 1e-5))
        << ref::shape_str(c.a) << " x N=" << c.N << " rows " << c.rows << " col_vectors " << c.col_vectors;
  }
}

// Concatenation along any axis: a constant row before the tokens (ViT's class token), and the
// rows of an NHWC image.
TEST(Concat, AnyAxisMatchesReference) {
  ref::Rng rng(30);
  {
    Shape s{2, 5, 6};
    Tensor x = ref::random_tensor(s, rng);
    auto tok = ref::randn(2 * 6, rng);
    ref::GraphBuilder gb;
    int xv = gb.input("x", s);
    gb.output(gb.node("Concat", {gb.constant("tok", {2, 1, 6}, tok), xv}, [](qnnc::Node &n) { n.set_i("axis", 1); }));
    qnnc::Module m = ref::compile(gb.finish());
    Tensor want{{2, 6, 6}, {}};
    for (int64_t b = 0; b < 2; b++) {
      want.data.insert(want.data.end(), tok.begin() + b * 6, tok.begin() + b * 6 + 6);
      want.data.insert(want.data.end(), x.data.begin() + b * 30, x.data.begin() + b * 30 + 30);
    }
    EXPECT_TRUE(ref::Close(m.run({x})[0], want, 0));
  }
  {
    Shape s1{2, 3, 4, 5}, s2{2, 3, 2, 5};
    Tensor a = ref::random_tensor(s1, rng), b = ref::random_tensor(s2, rng);
    ref::GraphBuilder gb;
    int av = nhwc_identity(gb, gb.input("a", s1)), bv = nhwc_identity(gb, gb.input("b", s2));
    gb.output(gb.node("Concat", {av, bv}, [](qnnc::Node &n) { n.set_i("axis", 2); }));
    qnnc::Module m = ref::compile(gb.finish());
    Tensor want{{2, 3, 6, 5}, {}};
    for (int64_t n = 0; n < 2; n++)
      for (int64_t c = 0; c < 3; c++) {
        auto at = [&](const Tensor &t, int64_t h) { return t.data.begin() + ((n * 3 + c) * h) * 5; };
        want.data.insert(want.data.end(), at(a, 4), at(a, 4) + 20);
        want.data.insert(want.data.end(), at(b, 2), at(b, 2) + 10);
      }
    EXPECT_TRUE(ref::Close(m.run({a, b})[0], want, 0));
  }
}

}  // namespace
