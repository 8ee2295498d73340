// Activation functions of one integer input run as exact lookup tables in integer models.
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

}  // namespace
