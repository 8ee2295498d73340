// Elementwise families beyond ReLU (kernels/families.h build_unary, build_binary) against
// naive references: Sigmoid, Tanh, HardSigmoid (non-default alpha/beta), HardSwish, SiLU
// (Mul(x, Sigmoid(x)) fused into one step), the functions fused into convolution and dense
// epilogues, and Mul/Sub/Div/Add with numpy broadcasting over
// NHWC activations (squeeze-and-excitation's [N,C,1,1] x [N,C,H,W]), constants ([C,1,1],
// scalars, [1,1,H,W]) and 2-D tensors; ReduceMean over H,W (GlobalAveragePool keepdims=0).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "reference.h"

namespace {

using qnnc::Tensor;
using ref::Shape;

float apply(const std::string &fn, float x) {
  if (fn == "Sigmoid") return 1.f / (1.f + std::exp(-x));
  if (fn == "Tanh") return std::tanh(x);
  if (fn == "HardSigmoid") return std::min(1.f, std::max(0.f, 0.3f * x + 0.4f));
  if (fn == "HardSwish") return x * std::min(1.f, std::max(0.f, x / 6.f + 0.5f));
  return NAN;
}

TEST(Unary, EachFunctionOnAwkwardShapes) {
  for (const char *fn : {"Sigmoid", "Tanh", "HardSigmoid", "HardSwish"})
    for (Shape s : {Shape{2, 19}, Shape{1, 7, 5, 3}, Shape{2, 33, 4, 4}}) {
      ref::GraphBuilder gb;
      int x = gb.input("x", s);
      gb.output(gb.node(fn, {x}, [&](qnnc::Node &n) {
        if (std::string(fn) == "HardSigmoid") {
          n.set_f("alpha", 0.3f);
          n.set_f("beta", 0.4f);
        }
      }));
      qnnc::Module m = ref::compile(gb.finish());
      Tensor in = qnnc::random_tensor(s, 7);
      for (auto &v : in.data) v *= 4;
      Tensor want = in;
      for (auto &v : want.data) v = apply(fn, v);
      EXPECT_TRUE(ref::Close(m.run({in})[0], want, 1e-6)) << fn << " " << ref::shape_str(s);
    }
}

TEST(Unary, SiluIsOneStep) {
  ref::GraphBuilder gb;
  int x = gb.input("x", {1, 12, 5, 5});
  gb.output(gb.node("Mul", {x, gb.node("Sigmoid", {x})}));
  qnnc::Module m = ref::compile(gb.finish());
  auto ops = ref::step_ops(m);
  EXPECT_EQ(ref::count(ops, "unary"), 1);
  EXPECT_EQ(ref::count(ops, "binary"), 0);
  Tensor in = qnnc::random_tensor({1, 12, 5, 5}, 3);
  Tensor want = in;
  for (auto &v : want.data) v = v / (1.f + std::exp(-v));
  EXPECT_TRUE(ref::Close(m.run({in})[0], want, 1e-6));
}

TEST(Unary, HardSwishFromHardSigmoidIsOneStep) {
  // HardSwish as opset-13 exporters write it: Mul(x, HardSigmoid(x; alpha 1/6, beta 1/2)), either
  // operand order. A HardSigmoid with other constants stays a gate of its own.
  for (float alpha : {1.f / 6.f, 0.2f})
    for (int side = 0; side < 2; side++) {
      ref::GraphBuilder gb;
      int x = gb.input("x", {2, 11, 4, 3});
      int h = gb.node("HardSigmoid", {x}, [&](qnnc::Node &n) {
        n.set_f("alpha", alpha);
        n.set_f("beta", 0.5f);
      });
      gb.output(gb.node("Mul", side ? std::vector<int>{h, x} : std::vector<int>{x, h}));
      qnnc::Module m = ref::compile(gb.finish());
      auto ops = ref::step_ops(m);
      const bool fused = alpha == 1.f / 6.f;
      EXPECT_EQ(ref::count(ops, "unary"), 1);
      EXPECT_EQ(ref::count(ops, "binary"), fused ? 0 : 1) << "alpha " << alpha;
      Tensor in = qnnc::random_tensor({2, 11, 4, 3}, 4);
      for (auto &v : in.data) v *= 5;
      Tensor want = in;
      for (auto &v : want.data) v = v * std::min(1.f, std::max(0.f, alpha * v + 0.5f));
      EXPECT_TRUE(ref::Close(m.run({in})[0], want, 1e-6)) << "alpha " << alpha << " side " << side;
    }
}

// A function after an fp32 convolution (plain, depthwise, with a residual) or dense layer runs in
// that kernel's epilogue: no unary step is left, and the result matches the two steps' reference.
TEST(Unary, FunctionsFuseIntoConvolutionAndDenseEpilogues) {
  struct Fn {
    const char *name;
    std::function<float(float)> f;
  };
  const Fn fns[] = {
      {"Sigmoid", [](float v) { return 1.f / (1.f + std::exp(-v)); }},
      {"Tanh", [](float v) { return std::tanh(v); }},
      {"HardSigmoid", [](float v) { return std::min(1.f, std::max(0.f, 0.3f * v + 0.4f)); }},
      {"HardSwish", [](float v) { return v * std::min(1.f, std::max(0.f, v / 6.f + 0.5f)); }},
      {"SiLU", [](float v) { return v / (1.f + std::exp(-v)); }},  // Mul(y, Sigmoid(y))
  };
  auto apply_fn = [](ref::GraphBuilder &gb, const std::string &fn, int y) {
    if (fn == "SiLU") return gb.node("Mul", {y, gb.node("Sigmoid", {y})});
    return gb.node(fn, {y}, [&](qnnc::Node &n) {
      if (fn == "HardSigmoid") {
        n.set_f("alpha", 0.3f);
        n.set_f("beta", 0.4f);
      }
    });
  };
  enum Kind { kConv, kDepthwise, kResidual, kDense };
  ref::Rng rng(11);
  for (Kind kind : {kConv, kDepthwise, kResidual, kDense})
    for (const Fn &fn : fns) {
      const int64_t N = 2, C = 13, M = kind == kDepthwise ? 13 : 19, H = 9, W = 7;
      const bool dw = kind == kDepthwise;
      const Shape xs = kind == kDense ? Shape{N, C} : Shape{N, C, H, W};
      const Shape ws = kind == kDense ? Shape{M, C} : Shape{M, dw ? 1 : C, 3, 3};
      Tensor x = ref::random_tensor(xs, rng), w = ref::random_tensor(ws, rng, 0.3f), b = ref::random_tensor({M}, rng);
      ref::GraphBuilder gb;
      int xi = gb.input("x", xs), wi = gb.constant("w", ws, w.data), bi = gb.constant("b", {M}, b.data);
      Tensor want;
      int y;
      if (kind == kDense) {
        y = gb.gemm(xi, wi, bi);
        want = ref::dense(x, w.data, M, &b.data);
      } else {
        y = gb.conv(xi, wi, bi, {2, 2}, {1, 1, 1, 0}, {1, 1});
        if (dw) gb.g.nodes.back().set_i("group", C);
        std::vector<float> full = w.data;  // depthwise as a dense convolution with zeros off the diagonal
        if (dw) {
          full.assign((size_t)(M * C * 9), 0.f);
          for (int64_t m = 0; m < M; m++)
            for (int64_t t = 0; t < 9; t++) full[(size_t)((m * C + m) * 9 + t)] = w.data[(size_t)(m * 9 + t)];
        }
        want = ref::conv2d(x, full, {M, C, 3, 3}, &b.data, {2, 2}, {1, 1, 1, 0}, {1, 1});
      }
      std::vector<Tensor> in{x};
      if (kind == kResidual) {
        Tensor r = ref::random_tensor(want.shape, rng);
        y = gb.node("Add", {y, gb.input("r", r.shape)});
        want = ref::add(want, r);
        in.push_back(r);
      }
      for (auto &v : want.data) v = fn.f(v);
      gb.output(apply_fn(gb, fn.name, y));
      qnnc::Module m = ref::compile(gb.finish());
      auto ops = ref::step_ops(m);
      const std::string what = std::string(fn.name) + " after kind " + std::to_string(kind);
      EXPECT_EQ(ref::count(ops, "unary") + ref::count(ops, "binary"), 0) << what;
      EXPECT_TRUE(ref::Close(m.run(in)[0], want, 1e-5)) << what;
    }
}

// Broadcast a op b over shapes aligned at the end, the reference way.
Tensor broadcast(const Tensor &a, const Tensor &b, char op) {
  size_t r = std::max(a.shape.size(), b.shape.size());
  auto pad = [&](Shape s) {
    s.insert(s.begin(), r - s.size(), 1);
    return s;
  };
  Shape sa = pad(a.shape), sb = pad(b.shape), so(r);
  for (size_t k = 0; k < r; k++) so[k] = std::max(sa[k], sb[k]);
  Tensor o{so, std::vector<float>((size_t)ref::numel(so))};
  std::vector<int64_t> idx(r, 0);
  for (int64_t i = 0; i < ref::numel(so); i++) {
    int64_t rem = i;
    for (size_t k = r; k-- > 0;) {
      idx[k] = rem % so[k];
      rem /= so[k];
    }
    int64_t ia = 0, ib = 0;
    for (size_t k = 0; k < r; k++) {
      ia = ia * sa[k] + (sa[k] == 1 ? 0 : idx[k]);
      ib = ib * sb[k] + (sb[k] == 1 ? 0 : idx[k]);
    }
    float x = a.data[ia], y = b.data[ib];
    o.data[i] = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y;
  }
  return o;
}

struct BCase {
  Shape a, b;
  bool b_const;
  const char *op;
};

TEST(Binary, BroadcastingOverActivationsAndConstants) {
  const BCase cases[] = {
      {{1, 13, 6, 5}, {1, 13, 1, 1}, false, "Mul"},  // squeeze-and-excitation
      {{2, 9, 4, 4}, {2, 9, 1, 1}, false, "Mul"},
      {{1, 13, 6, 5}, {13, 1, 1}, true, "Mul"},      // per-channel constant
      {{1, 5, 3, 7}, {1, 1, 3, 7}, true, "Add"},     // per-pixel constant (repacked to NHWC)
      {{1, 6, 4, 4}, {1}, true, "Sub"},              // scalar
      {{2, 8, 3, 3}, {2, 8, 3, 3}, false, "Div"},
      {{3, 17}, {17}, true, "Add"},                  // 2-D with a row vector
      {{3, 17}, {3, 1}, false, "Mul"},
  };
  ref::Rng rng(5);
  for (const auto &c : cases) {
    Tensor a = ref::random_tensor(c.a, rng), b = ref::random_tensor(c.b, rng);
    if (std::string(c.op) == "Div")
      for (auto &v : b.data) v = v >= 0 ? v + 0.5f : v - 0.5f;
    ref::GraphBuilder gb;
    int x = gb.input("a", c.a);
    int y = c.b_const ? gb.constant("b", c.b, b.data) : gb.input("b", c.b);
    gb.output(gb.node(c.op, {x, y}));
    qnnc::Module m = ref::compile(gb.finish());
    std::vector<Tensor> in{a};
    if (!c.b_const) in.push_back(b);
    char op = c.op[0] == 'M' ? '*' : c.op[0] == 'A' ? '+' : c.op[0] == 'S' ? '-' : '/';
    EXPECT_TRUE(ref::Close(m.run(in)[0], broadcast(a, b, op), 1e-6))
        << c.op << " " << ref::shape_str(c.a) << " " << ref::shape_str(c.b);
  }
}

TEST(ReduceMean, SpatialMeanWithoutKeepdims) {
  ref::GraphBuilder gb;
  int x = gb.input("x", {2, 11, 5, 3});
  gb.output(gb.node("GlobalAveragePool", {x}, [](qnnc::Node &n) { n.set_i("keepdims", 0); }));
  qnnc::Module m = ref::compile(gb.finish());
  Tensor in = qnnc::random_tensor({2, 11, 5, 3}, 9);
  Tensor want = ref::global_avgpool(in);
  want.shape = {2, 11};
  Tensor got = m.run({in})[0];
  EXPECT_EQ(got.shape, want.shape);
  EXPECT_TRUE(ref::Close(got, want, 1e-6));
}

}  // namespace
