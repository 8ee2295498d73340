// Integer models beyond convolutions: activation functions of one integer input run as exact
// lookup tables, and concatenations read by integer kernels copy integers of one shared encoding.
#include <gtest/gtest.h>

#include "codegen/compile.h"
#include "quantize/qconfig.h"
#include "quantize/report.h"
#include "reference.h"

namespace {

// A function of one integer activation (sigmoid, SiLU, hardswish, tanh, GELU) becomes a
// 256-entry table: no fp32 step between the two convolutions, and the result stays close to fp32.
TEST(QuantLookupTable, ActivationsBetweenIntegerConvsAreTables) {
  for (const std::string fn : {"Sigmoid", "HardSwish", "Tanh", "SiLU", "Gelu"}) {
    ref::Rng rng(31);
    ref::GraphBuilder gb;
    const int64_t C = 8, M = 13, M2 = 5;
    int x = gb.input("x", {1, C, 9, 7});
    int c1 = gb.conv(x, gb.constant("w1", {M, C, 3, 3}, ref::randn(M * C * 9, rng, 0.2f)),
                     gb.constant("b1", {M}, ref::randn(M, rng, 0.1f)), {1, 1}, {1, 1, 1, 1}, {1, 1});
    int c2 = gb.conv(x, gb.constant("w0", {M, C, 1, 1}, ref::randn(M * C, rng, 0.3f)),
                     gb.constant("b0", {M}, ref::randn(M, rng, 0.1f)), {1, 1}, {0, 0, 0, 0}, {1, 1});
    int a = gb.node("Add", {c1, c2});  // a second conv so that the first stays fp32 and this is u8
    int f = fn == "SiLU" ? gb.node("Mul", {a, gb.node("Sigmoid", {a})}) : gb.node(fn, {a});
    gb.output(gb.conv(f, gb.constant("w2", {M2, M, 1, 1}, ref::randn(M2 * M, rng, 0.3f)),
                      gb.constant("b2", {M2}, ref::randn(M2, rng, 0.1f)), {1, 1}, {0, 0, 0, 0}, {1, 1}));
    qnnc::Graph g = gb.finish();
    qnnc::Module fp32 = ref::compile(g);
    qnnc::CompileOptions opt;
    opt.quantize = true;
    opt.qconfig = qnnc::QConfig::parse_precision("int8");
    opt.qconfig.skip_first_conv = false;
    qnnc::Module q = qnnc::compile(g, opt);
    auto ops = ref::step_ops(q);
    EXPECT_EQ(ref::count(ops, "lut"), 1) << fn;
    EXPECT_EQ(ref::count(ops, "unary"), 0) << fn;
    qnnc::AccuracyReport r = qnnc::compare_modules(fp32, q, 4, 5);
    EXPECT_GT(r.cosine, 0.99) << fn << ": " << r.format();
  }
}

// SqueezeNet's fire module: two convolutions concatenated and read by a third. The two take
// the concat's encoding, so the concat copies bytes and nothing is dequantized on the way.
TEST(QuantConcat, ConcatOfIntegerConvsStaysInteger) {
  ref::Rng rng(32);
  ref::GraphBuilder gb;
  const int64_t C = 8, A = 11, B = 6, M = 5;
  int x = gb.input("x", {2, C, 7, 9});
  auto conv = [&](int in, int64_t cin, int64_t cout, int64_t k, const std::string &name) {
    int64_t p = k / 2;
    return gb.conv(in, gb.constant(name + ".w", {cout, cin, k, k}, ref::randn(cout * cin * k * k, rng, 0.3f)),
                   gb.constant(name + ".b", {cout}, ref::randn(cout, rng, 0.1f)), {1, 1}, {p, p, p, p}, {1, 1});
  };
  int s = gb.node("Relu", {conv(x, C, C, 1, "squeeze")});
  int a = gb.node("Relu", {conv(s, C, A, 1, "e1")});
  int b = gb.node("Relu", {conv(s, C, B, 3, "e3")});
  int cat = gb.node("Concat", {a, b}, [](qnnc::Node &n) { n.set_i("axis", 1); });
  gb.output(conv(cat, A + B, M, 1, "next"));
  qnnc::Graph g = gb.finish();
  qnnc::Module fp32 = ref::compile(g);
  qnnc::CompileOptions opt;
  opt.quantize = true;
  opt.qconfig = qnnc::QConfig::parse_precision("int8");
  qnnc::Module q = qnnc::compile(g, opt);
  int u8_concats = 0;  // written in place (a join of u8 slices) or copied as u8
  const auto &m = q.manifest();
  for (const auto &st : m["steps"])
    if (st["op"] == "concat") u8_concats += m["values"][st["writes"][0].get<int>()]["dtype"] == "u8";
  EXPECT_EQ(u8_concats, 1);
  auto ops = ref::step_ops(q);
  EXPECT_EQ(ref::count(ops, "dequantize"), 1);  // only the output
  qnnc::AccuracyReport r = qnnc::compare_modules(fp32, q, 4, 6);
  EXPECT_GT(r.cosine, 0.99) << r.format();
}

}  // namespace
