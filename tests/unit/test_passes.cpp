// Graph passes: what run_passes leaves of the built-in ResNet-18 (all batch norms folded, ReLUs
// and residual adds fused into 20 convolutions, NHWC inside), and that batch-norm folding does
// not change results.
#include <gtest/gtest.h>

#include "frontend/builtin_models.h"
#include "passes/passes.h"
#include "reference.h"

namespace {

using qnnc::Tensor;
using ref::Shape;

qnnc::Graph small_resnet18(bool reestimate) {
  qnnc::BuiltinOptions o;
  o.reestimate_batchnorm = reestimate;
  return qnnc::builtin_model("resnet18", {1, 3, 64, 64}, o);
}

int count_ops(const qnnc::Graph &g, const std::string &op) {
  int n = 0;
  for (const auto &node : g.nodes) n += node.op == op;
  return n;
}

TEST(Passes, ImportedResNet18HasOnnxOps) {
  qnnc::Graph g = small_resnet18(false);
  EXPECT_EQ(count_ops(g, "Conv"), 20);
  EXPECT_EQ(count_ops(g, "BatchNormalization"), 20);
  EXPECT_EQ(count_ops(g, "Relu"), 17);
  EXPECT_EQ(count_ops(g, "Add"), 8);
}

TEST(Passes, ResNet18FusesEverythingIntoConvolutions) {
  qnnc::Graph g = small_resnet18(false);
  qnnc::run_passes(g);
  for (const char *op : {"BatchNormalization", "Relu", "Add", "Conv", "relu", "add", "scale_shift"})
    EXPECT_EQ(count_ops(g, op), 0) << op << " left after passes";
  EXPECT_EQ(count_ops(g, "conv2d"), 20);
  EXPECT_EQ(count_ops(g, "maxpool"), 1);
  EXPECT_EQ(count_ops(g, "global_avgpool"), 1);
  EXPECT_EQ(count_ops(g, "flatten"), 1);
  EXPECT_EQ(count_ops(g, "dense"), 1);
  // The input's transform folds into the stem (it reads NCHW); the logits are 2-D.
  EXPECT_EQ(count_ops(g, "layout"), 0) << "no layout transform left";
  int from_nchw = 0;
  for (const auto &n : g.nodes) from_nchw += n.op == "conv2d" && n.i("from_nchw", 0) && n.inputs[0] == g.inputs[0];
  EXPECT_EQ(from_nchw, 1) << "the stem reads the model's NCHW input";

  int residual = 0, relu = 0;
  for (const auto &n : g.nodes)
    if (n.op == "conv2d") {
      residual += n.inputs.size() > 3;
      relu += n.i("relu", 0) != 0;
    }
  EXPECT_EQ(residual, 8) << "one residual add per basic block";
  // ReLU after the stem, after conv1 of each block, and after each block's add; the
  // downsample convs and conv2s feeding the adds (before the add) carry none on their own.
  EXPECT_EQ(relu, 1 + 8 + 8);

  // Every 4-D activation inside is NHWC.
  for (const auto &n : g.nodes)
    for (int o : n.outputs)
      if (g.values[o].type.shape.size() == 4)
        EXPECT_EQ(g.values[o].type.layout, qnnc::Layout::NHWC) << n.name;
  std::string text = qnnc::print_graph(g);
  EXPECT_NE(text.find("NHWC"), std::string::npos);
  EXPECT_NE(text.find("conv2d"), std::string::npos);
  EXPECT_EQ(text.find("BatchNormalization"), std::string::npos);
}

TEST(Passes, WithoutFoldingBatchNormsBecomeScaleShift) {
  qnnc::Graph g = small_resnet18(false);
  qnnc::PassOptions po;
  po.fold_batchnorm = false;
  qnnc::run_passes(g, po);
  EXPECT_EQ(count_ops(g, "BatchNormalization"), 0);
  EXPECT_EQ(count_ops(g, "scale_shift"), 20);
  EXPECT_EQ(count_ops(g, "conv2d"), 20);
}

TEST(Passes, NoLayoutPassKeepsNchw) {
  qnnc::Graph g = small_resnet18(false);
  qnnc::PassOptions po;
  po.nhwc = false;
  qnnc::run_passes(g, po);
  EXPECT_EQ(count_ops(g, "layout"), 0);
  EXPECT_EQ(qnnc::print_graph(g).find("NHWC"), std::string::npos);
}

TEST(Passes, RunPassesIsDeterministic) {
  qnnc::Graph a = small_resnet18(false), b = small_resnet18(false);
  qnnc::run_passes(a);
  qnnc::run_passes(b);
  EXPECT_EQ(qnnc::print_graph(a), qnnc::print_graph(b));
}

// A conv output read by two nodes must not be fused into either (its value is still needed).
TEST(Passes, SharedConvOutputIsNotFused) {
  ref::Rng rng(30);
  ref::GraphBuilder b;
  int x = b.input("x", {1, 4, 6, 6});
  int c = b.conv(x, b.constant("w", {4, 4, 3, 3}, ref::randn(144, rng)), -1, {1, 1}, {1, 1, 1, 1}, {1, 1});
  int r = b.node("Relu", {c});
  b.output(b.node("Add", {c, r}));
  qnnc::Graph g = b.finish();
  qnnc::run_passes(g);
  EXPECT_EQ(count_ops(g, "conv2d"), 1);
  EXPECT_EQ(count_ops(g, "relu"), 1);
  EXPECT_EQ(count_ops(g, "add"), 1);
  for (const auto &n : g.nodes)
    if (n.op == "conv2d") {
      EXPECT_EQ(n.inputs.size(), 3u);
      EXPECT_EQ(n.i("relu", 0), 0);
    }
}

// Batch-norm folding: compiled outputs with and without folding agree, on a conv stack with
// non-trivial batch-norm statistics.
TEST(Passes, BatchNormFoldingKeepsOutputs) {
  ref::Rng rng(31);
  const Shape s{2, 5, 11, 9};
  Tensor x = ref::random_tensor(s, rng);
  ref::GraphBuilder b;
  int y = b.input("x", s);
  Tensor want = x;
  int64_t cin = 5;
  for (int64_t cout : {16, 7}) {
    Shape ws{cout, cin, 3, 3};
    auto w = ref::randn(ref::numel(ws), rng, 0.3f), bias = ref::randn(cout, rng, 0.2f);
    std::vector<float> gamma(cout), beta(cout), mean(cout), var(cout);
    for (int64_t m = 0; m < cout; m++) {
      gamma[m] = rng.uniform(0.5f, 2.f);
      beta[m] = rng.normal() * 0.5f;
      mean[m] = rng.normal();
      var[m] = rng.uniform(0.1f, 4.f);
    }
    y = b.node("Relu", {b.batchnorm(b.conv(y, b.constant("w", ws, w), b.constant("b", {cout}, bias), {1, 1},
                                           {1, 1, 1, 1}, {1, 1}),
                                    gamma, beta, mean, var, 1e-5f)});
    want = ref::relu(ref::batchnorm(ref::conv2d(want, w, ws, &bias, {1, 1}, {1, 1, 1, 1}, {1, 1}), gamma, beta, mean,
                                    var, 1e-5f));
    cin = cout;
  }
  b.output(y);
  qnnc::Graph g = b.finish();

  qnnc::PassOptions fold, keep;
  keep.fold_batchnorm = false;
  auto mf = ref::compile(g, fold), mk = ref::compile(g, keep);
  EXPECT_EQ(ref::count(ref::step_ops(mf), "scale_shift"), 0);
  EXPECT_EQ(ref::count(ref::step_ops(mk), "scale_shift"), 2);
  auto of = mf.run({x}), ok = mk.run({x});
  EXPECT_TRUE(ref::Close(of[0], ok[0], 1e-5));
  EXPECT_TRUE(ref::Close(of[0], want, 1e-4));
  EXPECT_TRUE(ref::Close(ok[0], want, 1e-4));
}

}  // namespace
