// Concatenations written in place (codegen/concat_slices.h): a DenseNet-style block (each
// layer reads the concatenation of all earlier outputs; the growing concatenations are
// prefixes of the block's last one) and Inception-style nested concatenations with a pooling
// branch, odd channel counts, batch 2. fp32 against a naive reference; int8 bit for bit against
// the same module compiled with copies (`--knob concat.in_place=0`); and the plan: no concat
// kernel left, producers writing their slices with strides.
#include <gtest/gtest.h>

#include "reference.h"
#include "runtime/cpu_features.h"

namespace {

using qnnc::Tensor;
using ref::Shape;

Tensor concat_ref(const std::vector<Tensor> &xs) {
  Shape s = xs[0].shape;
  s[1] = 0;
  for (const auto &x : xs) s[1] += x.shape[1];
  Tensor y{s, std::vector<float>((size_t)ref::numel(s))};
  const int64_t inner = s[2] * s[3];
  for (int64_t n = 0; n < s[0]; n++) {
    int64_t off = 0;
    for (const auto &x : xs) {
      for (int64_t c = 0; c < x.shape[1]; c++)
        for (int64_t i = 0; i < inner; i++)
          y.data[(size_t)((n * s[1] + off + c) * inner + i)] = x.data[(size_t)((n * x.shape[1] + c) * inner + i)];
      off += x.shape[1];
    }
  }
  return y;
}

// The graph and its naive reference output, built side by side.
struct Block {
  ref::GraphBuilder gb;
  ref::Rng rng{21};
  Tensor input;

  struct V {
    int id;
    Tensor t;
  };
  V conv(const V &x, int64_t cout, int64_t k, bool relu) {
    const int64_t cin = x.t.shape[1], p = k / 2;
    auto w = ref::randn(cout * cin * k * k, rng, 0.4f), b = ref::randn(cout, rng, 0.1f);
    int id = gb.conv(x.id, gb.constant("w" + std::to_string(gb.counter), {cout, cin, k, k}, w),
                     gb.constant("b" + std::to_string(gb.counter), {cout}, b), {1, 1}, {p, p, p, p}, {1, 1});
    Tensor y = ref::conv2d(x.t, w, {cout, cin, k, k}, &b, {1, 1}, {p, p, p, p}, {1, 1});
    if (!relu) return {id, y};
    return {gb.node("Relu", {id}), ref::relu(y)};
  }
  V concat(const std::vector<V> &xs) {
    std::vector<int> ids;
    std::vector<Tensor> ts;
    for (const auto &x : xs) ids.push_back(x.id), ts.push_back(x.t);
    return {gb.node("Concat", ids, [](qnnc::Node &n) { n.set_i("axis", 1); }), concat_ref(ts)};
  }
  V bn_relu(const V &x) {  // DenseNet's pre-activation: batch norm and ReLU on the concatenation
    const int64_t C = x.t.shape[1];
    std::vector<float> g(C), b(C), m(C), v(C);
    for (int64_t c = 0; c < C; c++)
      g[c] = 0.5f + 0.1f * (float)(c % 7), b[c] = 0.05f * (float)(c % 5) - 0.1f, m[c] = 0.1f, v[c] = 1.5f;
    int id = gb.node("Relu", {gb.batchnorm(x.id, g, b, m, v, 1e-5f)});
    return {id, ref::relu(ref::batchnorm(x.t, g, b, m, v, 1e-5f))};
  }
  V maxpool3(const V &x) {
    return {gb.maxpool(x.id, {3, 3}, {1, 1}, {1, 1, 1, 1}), ref::maxpool(x.t, {3, 3}, {1, 1}, {1, 1, 1, 1})};
  }

  // stem -> dense block of 4 layers (growth 5) -> Inception-style nested concatenation.
  Tensor build() {
    const Shape xs{2, 3, 9, 7};
    input = ref::random_tensor(xs, rng);
    V x{gb.input("x", xs), input};
    std::vector<V> feats{conv(x, 7, 3, true)};
    for (int layer = 0; layer < 4; layer++) {
      V cat = concat(feats);
      V f = conv(conv(bn_relu(cat), 6, 1, true), 5, 3, false);
      feats.push_back(f);
    }
    V block = concat(feats);  // 7 + 4 * 5 = 27 channels
    V a = conv(block, 3, 1, true), b = conv(block, 9, 3, true), pool = maxpool3(block);
    V inner = concat({a, b});
    V outer = concat({inner, pool, conv(block, 4, 1, true)});
    V y = conv(outer, 6, 1, false);
    gb.output(y.id);
    return y.t;
  }
};

int joins(const qnnc::Module &m) {
  int n = 0;
  for (const auto &st : m.manifest()["steps"]) n += st["op"] == "concat" && st["alias"].get<bool>();
  return n;
}

TEST(ConcatInPlace, DenseAndInceptionBlocksMatchReference) {
  Block blk;
  Tensor want = blk.build();
  qnnc::Graph g = blk.gb.finish();
  qnnc::Module m = ref::compile(g);
  EXPECT_TRUE(ref::Close(m.run({blk.input})[0], want));
  // Every concatenation became a join: 5 in the block (4 prefixes and the whole), 2 nested.
  EXPECT_EQ(ref::count(ref::step_ops(m), "concat"), 7);
  EXPECT_EQ(joins(m), 7);
  // The producers write their slices: strided outputs, and some slices lie inside slices.
  int strided = 0, nested = 0;
  const auto &man = m.manifest();
  for (const auto &st : man["steps"])
    if (st.contains("spec") && st["spec"].contains("arg_strides")) strided++;
  for (const auto &v : man["values"])
    if (v.contains("channel_offset") && man["values"][v["alias_of"].get<int>()].contains("channel_offset")) nested++;
  EXPECT_GE(strided, 10);
  EXPECT_GE(nested, 1);

  // Copies give the same numbers, and the knob turns placement off.
  qnnc::CompileOptions opt;
  opt.knobs["concat"]["in_place"] = 0;
  qnnc::Module copies = qnnc::compile(g, opt);
  EXPECT_EQ(joins(copies), 0);
  EXPECT_TRUE(ref::Close(copies.run({blk.input})[0], m.run({blk.input})[0], 0.0));
}

TEST(ConcatInPlace, Int8IdenticalToCopies) {
  Block blk;
  blk.build();
  qnnc::Graph g = blk.gb.finish();
  qnnc::CompileOptions opt;
  opt.quantize = true;
  opt.qconfig = qnnc::QConfig::parse_precision("int8");
  opt.qconfig.skip_first_conv = false;
  qnnc::Module in_place = qnnc::compile(g, opt);
  opt.knobs["concat"]["in_place"] = 0;
  qnnc::Module copies = qnnc::compile(g, opt);
  EXPECT_EQ(joins(in_place), 7);
  EXPECT_EQ(joins(copies), 0);
  // Quantize and dequantize steps that write or read slices run over strided channel rows.
  int rows = 0;
  for (const auto &st : in_place.manifest()["steps"])
    if (st.contains("spec") && st["spec"].contains("arg_strides") &&
        (st["op"] == "dequantize" || st["op"] == "quantize"))
      rows++;
  EXPECT_GE(rows, 1);
  for (int seed = 0; seed < 2; seed++) {
    Tensor x = qnnc::random_tensor(blk.input.shape, 40 + seed);
    EXPECT_TRUE(ref::Close(in_place.run({x})[0], copies.run({x})[0], 0.0)) << "seed " << seed;
  }
}

// AMX 1x1 convolutions take their pixels as one row (kernels/conv2d_q.h conv2d_q_amx_flat):
// two of them write their slices of a concatenation, a third reads it. The same integers with
// copies, and without AMX.
TEST(ConcatInPlace, AmxPixelRowsWriteAndReadSlices) {
  if (!qnnc::detect_cpu_features().count("amx_int8")) GTEST_SKIP() << "this CPU has no AMX";
  Block blk;
  const Shape xs{1, 16, 5, 7};
  blk.input = ref::random_tensor(xs, blk.rng);
  Block::V x{blk.gb.input("x", xs), blk.input};
  Block::V cat = blk.concat({blk.conv(x, 32, 1, true), blk.conv(x, 16, 1, true)});
  blk.gb.output(blk.conv(cat, 32, 1, false).id);
  qnnc::Graph g = blk.gb.finish();
  qnnc::CompileOptions opt;
  opt.quantize = true;
  opt.qconfig = qnnc::QConfig::parse_precision("int8");
  opt.qconfig.skip_first_conv = false;
  opt.knobs["conv2d_q"]["amx"] = 1;
  qnnc::Module in_place = qnnc::compile(g, opt);
  opt.knobs["concat"]["in_place"] = 0;
  qnnc::Module copies = qnnc::compile(g, opt);
  opt.knobs["conv2d_q"]["amx"] = 0;
  qnnc::Module vectors = qnnc::compile(g, opt);
  EXPECT_EQ(joins(in_place), 1);
  int amx = 0, strided = 0;
  for (const auto &st : in_place.manifest()["steps"])
    if (st["op"] == "conv2d_q") {
      amx += st["spec"]["knobs"].value("amx", 0);
      strided += st["spec"].contains("arg_strides");
    }
  EXPECT_EQ(amx, 3);
  EXPECT_EQ(strided, 2);  // the two that write slices (the third reads the whole buffer)
  for (int seed = 0; seed < 2; seed++) {
    Tensor t = qnnc::random_tensor(xs, 60 + seed);
    Tensor want = vectors.run({t})[0];
    EXPECT_TRUE(ref::Close(in_place.run({t})[0], want, 0.0)) << "seed " << seed;
    EXPECT_TRUE(ref::Close(copies.run({t})[0], want, 0.0)) << "seed " << seed;
  }
}

// fp32 1x1 convolutions over their pixels as one row (knob pixel_row, kernels/conv2d.h; the
// default on x86 without AVX-512 for long reductions) write their slices of a concatenation and
// read it; every host runs it with the knob forced. Against the reference and copies.
TEST(ConcatInPlace, Fp32PixelRowsWriteAndReadSlices) {
  Block blk;
  const Shape xs{2, 24, 6, 9};
  blk.input = ref::random_tensor(xs, blk.rng);
  Block::V x{blk.gb.input("x", xs), blk.input};
  Block::V cat = blk.concat({blk.conv(x, 40, 1, true), blk.conv(x, 16, 1, false)});
  Block::V y = blk.conv(cat, 24, 1, true);
  blk.gb.output(y.id);
  qnnc::Graph g = blk.gb.finish();
  qnnc::CompileOptions opt;
  opt.knobs["conv2d"] = {{"pixel_row", 1}, {"x_tile", 6}};
  qnnc::Module in_place = qnnc::compile(g, opt);
  opt.knobs["concat"]["in_place"] = 0;
  qnnc::Module copies = qnnc::compile(g, opt);
  EXPECT_EQ(joins(in_place), 1);
  int rows = 0, strided = 0;
  for (const auto &st : in_place.manifest()["steps"])
    if (st["op"] == "conv2d") {
      rows += st["spec"]["knobs"].value("pixel_row", 0);
      strided += st["spec"].contains("arg_strides");
    }
  EXPECT_EQ(rows, 3);
  EXPECT_EQ(strided, 2);  // the two that write slices
  EXPECT_TRUE(ref::Close(in_place.run({blk.input})[0], y.t, 1e-4));
  EXPECT_TRUE(ref::Close(copies.run({blk.input})[0], in_place.run({blk.input})[0], 0.0));
}

}  // namespace
