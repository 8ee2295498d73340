// Non-convolution kernels against naive references: max pooling, global average pooling,
// dense (Gemm), standalone Relu / Add / BatchNormalization, Flatten, and the NCHW <-> NHWC
// transforms every graph gets at its borders (inputs and outputs are always NCHW).
#include <gtest/gtest.h>

#include "reference.h"

namespace {

using qnnc::Tensor;
using ref::Shape;

// ---------------------------------------------------------------------------------------------
// MaxPool

struct PoolCase {
  Shape x;
  std::array<int64_t, 2> k, stride;
  std::array<int64_t, 4> pads;
  std::string name;
};

void PrintTo(const PoolCase &c, std::ostream *os) { *os << c.name; }

class MaxPoolTest : public ::testing::TestWithParam<PoolCase> {};

TEST_P(MaxPoolTest, MatchesReference) {
  const PoolCase &c = GetParam();
  ref::Rng rng(11);
  Tensor x = ref::random_tensor(c.x, rng);
  ref::GraphBuilder b;
  b.output(b.maxpool(b.input("x", c.x), c.k, c.stride, c.pads));
  auto m = ref::compile(b.finish());
  auto out = m.run({x});
  ASSERT_EQ(out.size(), 1u);
  // Max pooling selects inputs: results must be exact.
  EXPECT_TRUE(ref::Close(out[0], ref::maxpool(x, c.k, c.stride, c.pads), 0.0));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MaxPoolTest,
    ::testing::Values(PoolCase{{1, 17, 15, 15}, {3, 3}, {2, 2}, {1, 1, 1, 1}, "k3s2p1_c17_15x15"},
                      PoolCase{{2, 5, 7, 9}, {3, 3}, {2, 2}, {1, 1, 1, 1}, "k3s2p1_n2_c5_7x9"},
                      PoolCase{{1, 3, 7, 9}, {2, 2}, {2, 2}, {0, 0, 0, 0}, "k2s2p0_c3_7x9"},
                      PoolCase{{2, 16, 8, 8}, {2, 2}, {2, 2}, {0, 0, 0, 0}, "k2s2p0_n2_c16_8x8"},
                      PoolCase{{1, 33, 9, 11}, {3, 2}, {2, 1}, {1, 0, 1, 1}, "k3x2_s2x1_asym_c33_9x11"}),
    [](const ::testing::TestParamInfo<PoolCase> &i) { return i.param.name; });

// All-negative input: padded positions must never win (padding is -inf, not 0).
TEST(MaxPool, PaddingNeverWinsOnNegativeInput) {
  Shape s{1, 5, 7, 9};
  ref::Rng rng(12);
  Tensor x = ref::random_tensor(s, rng);
  for (auto &v : x.data) v = -1.f - std::fabs(v);
  ref::GraphBuilder b;
  b.output(b.maxpool(b.input("x", s), {3, 3}, {2, 2}, {1, 1, 1, 1}));
  auto out = ref::compile(b.finish()).run({x});
  EXPECT_TRUE(ref::Close(out[0], ref::maxpool(x, {3, 3}, {2, 2}, {1, 1, 1, 1}), 0.0));
  for (float v : out[0].data) EXPECT_LT(v, 0.f);
}

// ceil_mode rounds the output size up, but (as in PyTorch and ONNX Runtime) never keeps a
// window that starts in the end padding: such a window would see only padding (-inf).
TEST(MaxPool, CeilMode) {
  struct Case {
    ref::Shape x;
    std::array<int64_t, 2> k, stride;
    std::array<int64_t, 4> pads;
  };
  for (const Case &c : {Case{{1, 3, 7, 9}, {3, 3}, {2, 2}, {0, 0, 0, 0}},    // rounds up: 3x4 (floor: 3x4 / 2x4)
                        Case{{1, 5, 8, 6}, {3, 3}, {2, 2}, {0, 0, 0, 0}},    // 4x3 instead of 3x2
                        Case{{2, 17, 5, 5}, {2, 2}, {2, 2}, {1, 1, 1, 1}},   // 3x3: a 4th window would be all padding
                        Case{{1, 4, 6, 7}, {3, 3}, {2, 2}, {1, 1, 1, 1}}}) {
    SCOPED_TRACE(ref::shape_str(c.x) + " pads " + std::to_string(c.pads[0]));
    ref::Rng rng(24);
    Tensor x = ref::random_tensor(c.x, rng);
    ref::GraphBuilder b;
    b.output(b.maxpool(b.input("x", c.x), c.k, c.stride, c.pads, true));
    auto out = ref::compile(b.finish()).run({x});
    Tensor want = ref::maxpool(x, c.k, c.stride, c.pads, true);
    EXPECT_TRUE(ref::Close(out[0], want, 0.0));
    for (float v : out[0].data) ASSERT_TRUE(std::isfinite(v));
  }
}

// ---------------------------------------------------------------------------------------------
// Global average pooling (+ Flatten + Gemm: the ResNet head)

TEST(GlobalAvgPool, MatchesReference) {
  for (Shape s : {Shape{2, 17, 7, 9}, Shape{1, 3, 15, 15}, Shape{1, 64, 4, 4}, Shape{2, 5, 1, 1}}) {
    SCOPED_TRACE(ref::shape_str(s));
    ref::Rng rng(13);
    Tensor x = ref::random_tensor(s, rng);
    ref::GraphBuilder b;
    b.output(b.node("GlobalAveragePool", {b.input("x", s)}));
    auto out = ref::compile(b.finish()).run({x});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(ref::Close(out[0], ref::global_avgpool(x), 1e-5));
  }
}

TEST(GlobalAvgPool, FlattenGemmHead) {
  const Shape s{2, 17, 7, 9};
  const int64_t M = 13;
  ref::Rng rng(14);
  Tensor x = ref::random_tensor(s, rng);
  auto w = ref::randn(M * s[1], rng, 0.3f), bias = ref::randn(M, rng);
  ref::GraphBuilder b;
  int p = b.node("GlobalAveragePool", {b.input("x", s)});
  int f = b.node("Flatten", {p}, [](qnnc::Node &n) { n.set_i("axis", 1); });
  b.output(b.gemm(f, b.constant("w", {M, s[1]}, w), b.constant("b", {M}, bias)));
  auto m = ref::compile(b.finish());
  auto out = m.run({x});
  Tensor pooled = ref::global_avgpool(x);
  pooled.shape = {s[0], s[1]};
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(ref::Close(out[0], ref::dense(pooled, w, M, &bias), 1e-5));
  // Flatten of a 1x1 spatial tensor is free: a view, no transpose before it.
  auto ops = ref::step_ops(m);
  EXPECT_EQ(ref::count(ops, "flatten"), 1);
  EXPECT_EQ(ref::count(ops, "layout"), 1) << "only the input transform";
}

// Flatten of a tensor with spatial extent must produce NCHW (channel-major) feature order,
// whatever layout the activations had inside the graph.
TEST(Flatten, KeepsNchwFeatureOrderAfterMaxPool) {
  const Shape s{2, 5, 9, 11};
  const int64_t M = 7;
  ref::Rng rng(15);
  Tensor x = ref::random_tensor(s, rng);
  Tensor pooled = ref::maxpool(x, {3, 3}, {2, 2}, {1, 1, 1, 1});  // [2,5,5,6]
  const int64_t K = pooled.numel() / s[0];
  auto w = ref::randn(M * K, rng, 0.1f), bias = ref::randn(M, rng);
  ref::GraphBuilder b;
  int p = b.maxpool(b.input("x", s), {3, 3}, {2, 2}, {1, 1, 1, 1});
  int f = b.node("Flatten", {p}, [](qnnc::Node &n) { n.set_i("axis", 1); });
  b.output(b.gemm(f, b.constant("w", {M, K}, w), b.constant("b", {M}, bias)));
  auto out = ref::compile(b.finish()).run({x});
  pooled.shape = {s[0], K};
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(ref::Close(out[0], ref::dense(pooled, w, M, &bias), 1e-5));
}

// Flatten straight from a 4-D graph input (which qnnc transposes to NHWC on entry).
TEST(Flatten, OfGraphInput) {
  const ref::Shape s{2, 3, 5, 7};
  const int64_t K = 3 * 5 * 7, M = 6;
  ref::Rng rng(23);
  Tensor x = ref::random_tensor(s, rng);
  auto w = ref::randn(M * K, rng, 0.2f);
  ref::GraphBuilder b;
  int f = b.node("Flatten", {b.input("x", s)}, [](qnnc::Node &n) { n.set_i("axis", 1); });
  b.output(b.gemm(f, b.constant("w", {M, K}, w), -1));
  auto out = ref::compile(b.finish()).run({x});
  Tensor xf{{2, K}, x.data};
  EXPECT_TRUE(ref::Close(out[0], ref::dense(xf, w, M, nullptr), 1e-5));
}

// ---------------------------------------------------------------------------------------------
// Dense (Gemm with W [out, in])

struct DenseCase {
  int64_t N, K, M;
  bool bias, relu;
  std::string name;
};

void PrintTo(const DenseCase &c, std::ostream *os) { *os << c.name; }

class DenseTest : public ::testing::TestWithParam<DenseCase> {};

TEST_P(DenseTest, MatchesReference) {
  const DenseCase &c = GetParam();
  ref::Rng rng(16 + c.K);
  Tensor x = ref::random_tensor({c.N, c.K}, rng);
  auto w = ref::randn(c.M * c.K, rng, 1.f / std::sqrt((float)c.K)), bias = ref::randn(c.M, rng);
  ref::GraphBuilder b;
  int y = b.gemm(b.input("x", {c.N, c.K}), b.constant("w", {c.M, c.K}, w), c.bias ? b.constant("b", {c.M}, bias) : -1);
  if (c.relu) y = b.node("Relu", {y});
  b.output(y);
  auto m = ref::compile(b.finish());
  Tensor want = ref::dense(x, w, c.M, c.bias ? &bias : nullptr);
  if (c.relu) want = ref::relu(want);
  auto out = m.run({x});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(ref::Close(out[0], want, 1e-5));
  EXPECT_EQ(ref::step_ops(m), std::vector<std::string>{"dense"}) << "ReLU fused, no layout steps for 2-D";
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseTest,
                         ::testing::Values(DenseCase{1, 33, 17, true, false, "n1_k33_m17"},
                                           DenseCase{2, 17, 5, true, false, "n2_k17_m5"},
                                           DenseCase{2, 100, 37, false, false, "n2_k100_m37_nobias"},
                                           DenseCase{1, 7, 3, true, true, "n1_k7_m3_relu"},
                                           DenseCase{2, 64, 48, true, true, "n2_k64_m48_relu"},
                                           DenseCase{1, 512, 1000, true, false, "n1_k512_m1000"},
                                           DenseCase{2, 9, 1, true, false, "n2_k9_m1"}),
                         [](const ::testing::TestParamInfo<DenseCase> &i) { return i.param.name; });

// ---------------------------------------------------------------------------------------------
// Standalone elementwise ops

TEST(Eltwise, ReluOn4DInput) {
  const Shape s{2, 5, 7, 9};
  ref::Rng rng(17);
  Tensor x = ref::random_tensor(s, rng);
  ref::GraphBuilder b;
  b.output(b.node("Relu", {b.input("x", s)}));
  auto m = ref::compile(b.finish());
  auto out = m.run({x});
  EXPECT_TRUE(ref::Close(out[0], ref::relu(x), 0.0));
  auto ops = ref::step_ops(m);
  EXPECT_EQ(ref::count(ops, "relu"), 1);
  EXPECT_EQ(ref::count(ops, "layout"), 2) << "NCHW -> NHWC before, NHWC -> NCHW after";
}

TEST(Eltwise, ReluOn2DInput) {
  const Shape s{3, 37};
  ref::Rng rng(18);
  Tensor x = ref::random_tensor(s, rng);
  ref::GraphBuilder b;
  b.output(b.node("Relu", {b.input("x", s)}));
  auto out = ref::compile(b.finish()).run({x});
  EXPECT_TRUE(ref::Close(out[0], ref::relu(x), 0.0));
}

TEST(Eltwise, AddOfTwoInputs) {
  for (Shape s : {Shape{1, 17, 7, 9}, Shape{2, 3, 5, 5}, Shape{70, 90}}) {  // 70*90 spans several add chunks
    SCOPED_TRACE(ref::shape_str(s));
    ref::Rng rng(19);
    Tensor x = ref::random_tensor(s, rng), y = ref::random_tensor(s, rng);
    ref::GraphBuilder b;
    b.output(b.node("Add", {b.input("x", s), b.input("y", s)}));
    auto out = ref::compile(b.finish()).run({x, y});
    EXPECT_TRUE(ref::Close(out[0], ref::add(x, y), 0.0));
  }
}

TEST(Eltwise, AddReluFused) {
  const Shape s{2, 16, 5, 7};
  ref::Rng rng(20);
  Tensor x = ref::random_tensor(s, rng), y = ref::random_tensor(s, rng);
  ref::GraphBuilder b;
  b.output(b.node("Relu", {b.node("Add", {b.input("x", s), b.input("y", s)})}));
  auto m = ref::compile(b.finish());
  auto out = m.run({x, y});
  EXPECT_TRUE(ref::Close(out[0], ref::relu(ref::add(x, y)), 0.0));
  EXPECT_EQ(ref::count(ref::step_ops(m), "relu"), 0) << "ReLU fused into the add";
}

// A batch norm that does not follow a convolution stays a per-channel affine step.
TEST(Eltwise, StandaloneBatchNormRelu) {
  const Shape s{2, 17, 5, 7};
  ref::Rng rng(21);
  Tensor x = ref::random_tensor(s, rng);
  std::vector<float> gamma(17), beta(17), mean(17), var(17);
  for (int c = 0; c < 17; c++) {
    gamma[c] = rng.uniform(0.5f, 1.5f);
    beta[c] = rng.normal();
    mean[c] = rng.normal();
    var[c] = rng.uniform(0.2f, 3.f);
  }
  ref::GraphBuilder b;
  b.output(b.node("Relu", {b.batchnorm(b.input("x", s), gamma, beta, mean, var, 1e-3f)}));
  auto m = ref::compile(b.finish());
  auto out = m.run({x});
  EXPECT_TRUE(ref::Close(out[0], ref::relu(ref::batchnorm(x, gamma, beta, mean, var, 1e-3f)), 1e-5));
  auto ops = ref::step_ops(m);
  EXPECT_EQ(ref::count(ops, "scale_shift"), 1);
  EXPECT_EQ(ref::count(ops, "relu"), 0);
}

// ---------------------------------------------------------------------------------------------
// Layout handling across a small network with two outputs, one of them a 4-D intermediate
// that is also consumed (so its ReLU cannot be fused and it must leave the graph as NCHW).

TEST(Layout, TwoOutputsIncludingConsumedIntermediate) {
  const Shape s{1, 3, 15, 15};
  ref::Rng rng(22);
  Tensor x = ref::random_tensor(s, rng);
  auto w1 = ref::randn(8 * 3 * 9, rng, 0.3f), b1 = ref::randn(8, rng, 0.1f);
  auto w2 = ref::randn(8 * 8 * 9, rng, 0.1f), b2 = ref::randn(8, rng, 0.1f);
  auto wf = ref::randn(10 * 8, rng, 0.3f), bf = ref::randn(10, rng, 0.1f);

  ref::GraphBuilder b;
  int c1 = b.conv(b.input("x", s), b.constant("w1", {8, 3, 3, 3}, w1), b.constant("b1", {8}, b1), {1, 1},
                  {1, 1, 1, 1}, {1, 1});
  int mp = b.maxpool(b.node("Relu", {c1}), {3, 3}, {2, 2}, {1, 1, 1, 1});
  int c2 = b.conv(mp, b.constant("w2", {8, 8, 3, 3}, w2), b.constant("b2", {8}, b2), {1, 1}, {1, 1, 1, 1}, {1, 1});
  int r2 = b.node("Relu", {b.node("Add", {c2, mp})});
  int gp = b.node("GlobalAveragePool", {r2});
  int fl = b.node("Flatten", {gp}, [](qnnc::Node &n) { n.set_i("axis", 1); });
  int fc = b.gemm(fl, b.constant("wf", {10, 8}, wf), b.constant("bf", {10}, bf));
  b.output(c1);
  b.output(fc);
  auto m = ref::compile(b.finish());
  auto out = m.run({x});

  Tensor rc1 = ref::conv2d(x, w1, {8, 3, 3, 3}, &b1, {1, 1}, {1, 1, 1, 1}, {1, 1});
  Tensor rmp = ref::maxpool(ref::relu(rc1), {3, 3}, {2, 2}, {1, 1, 1, 1});
  Tensor rr2 = ref::relu(ref::add(ref::conv2d(rmp, w2, {8, 8, 3, 3}, &b2, {1, 1}, {1, 1, 1, 1}, {1, 1}), rmp));
  Tensor rgp = ref::global_avgpool(rr2);
  rgp.shape = {1, 8};
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(ref::Close(out[0], rc1, 1e-5));
  EXPECT_TRUE(ref::Close(out[1], ref::dense(rgp, wf, 10, &bf), 1e-4));
}

}  // namespace
