// conv2d kernels against a naive NCHW reference: many shapes (odd channel counts around the
// SIMD width, strides, symmetric/asymmetric padding, 1x1..7x7 and non-square kernels,
// dilation, batch 1 and 2) and the fused epilogues (bias, ReLU, folded batch norm, residual add).
#include <gtest/gtest.h>

#include <set>

#include "kernels/conv2d.h"
#include "kernels/conv2d_winograd.h"
#include "reference.h"
#include "spec_helpers.h"

namespace {

using ref::Shape;
using qnnc::Tensor;

enum class Epilogue {
  None,
  Relu,
  BN,             // Conv -> BatchNormalization (folded into the conv)
  BNRelu,         // Conv -> BatchNormalization -> Relu
  ResInput,       // Add(conv, second graph input)
  ResInputRelu,   // Relu(Add(conv, second graph input))
  ResConvRelu,    // Relu(Add(conv, another conv of the same input))
  ResIdentityRelu,  // Relu(Add(conv(x), x)): the identity shortcut
  BNResInputRelu  // Relu(Add(BN(conv), second graph input)): a ResNet block tail
};

const char *epilogue_name(Epilogue e) {
  switch (e) {
    case Epilogue::None: return "";
    case Epilogue::Relu: return "_relu";
    case Epilogue::BN: return "_bn";
    case Epilogue::BNRelu: return "_bn_relu";
    case Epilogue::ResInput: return "_addinput";
    case Epilogue::ResInputRelu: return "_addinput_relu";
    case Epilogue::ResConvRelu: return "_addconv_relu";
    case Epilogue::ResIdentityRelu: return "_addidentity_relu";
    case Epilogue::BNResInputRelu: return "_bn_addinput_relu";
  }
  return "?";
}

struct ConvCase {
  int64_t N, C, H, W, M, KH, KW;
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 4> pads{0, 0, 0, 0};  // top, left, bottom, right
  std::array<int64_t, 2> dil{1, 1};
  bool bias = true;
  Epilogue epi = Epilogue::None;

  std::string name() const {
    std::string s = "n" + std::to_string(N) + "_c" + std::to_string(C) + "_" + std::to_string(H) + "x" +
                    std::to_string(W) + "_m" + std::to_string(M) + "_k" + std::to_string(KH) + "x" + std::to_string(KW);
    if (stride[0] != 1 || stride[1] != 1) s += "_s" + std::to_string(stride[0]);
    if (pads[0] == pads[1] && pads[1] == pads[2] && pads[2] == pads[3]) s += "_p" + std::to_string(pads[0]);
    else s += "_p" + std::to_string(pads[0]) + std::to_string(pads[1]) + std::to_string(pads[2]) + std::to_string(pads[3]);
    if (dil[0] != 1 || dil[1] != 1) s += "_d" + std::to_string(dil[0]);
    if (!bias) s += "_nobias";
    return s + epilogue_name(epi);
  }
};

void PrintTo(const ConvCase &c, std::ostream *os) { *os << c.name(); }

ConvCase mk(int64_t N, int64_t C, int64_t H, int64_t W, int64_t M, int64_t KH, int64_t KW, int64_t stride,
            std::array<int64_t, 4> pads, Epilogue epi = Epilogue::None, bool bias = true, int64_t dil = 1) {
  ConvCase c{N, C, H, W, M, KH, KW};
  c.stride = {stride, stride};
  c.pads = pads;
  c.dil = {dil, dil};
  c.bias = bias;
  c.epi = epi;
  return c;
}

constexpr std::array<int64_t, 4> P0{0, 0, 0, 0}, P1{1, 1, 1, 1}, P2{2, 2, 2, 2}, P3{3, 3, 3, 3};
using E = Epilogue;

// Channel counts straddle the AVX-512 vector width (16 floats) and the packed weight block.
const std::vector<ConvCase> kCases = {
    // Plain convolutions: shapes.
    mk(1, 3, 7, 9, 5, 3, 3, 1, P1),                        // channels below 16, odd spatial
    mk(1, 16, 15, 15, 16, 3, 3, 1, P1),                    // exactly one vector
    mk(1, 17, 15, 15, 33, 3, 3, 2, P1),                    // above 16, stride 2
    mk(1, 33, 7, 9, 17, 1, 1, 1, P0),                      // 1x1
    mk(1, 13, 15, 15, 7, 7, 7, 2, P3),                     // 7x7 stride 2 pad 3 (stem-like)
    mk(1, 5, 9, 11, 13, 5, 3, 1, {2, 1, 2, 1}),            // non-square 5x3 kernel
    mk(1, 7, 15, 15, 16, 3, 3, 1, P2, E::None, true, 2),   // dilation 2
    mk(1, 5, 15, 15, 7, 3, 3, 2, P1, E::None, true, 2),    // dilation 2 with stride 2
    mk(1, 3, 7, 9, 17, 3, 3, 1, {0, 1, 1, 0}),             // asymmetric padding
    mk(1, 5, 9, 8, 7, 3, 3, 2, {1, 0, 0, 1}),              // asymmetric padding, stride 2
    mk(1, 16, 15, 15, 32, 3, 3, 2, P0),                    // stride 2, no padding, odd input
    mk(1, 3, 7, 9, 5, 3, 3, 1, P3),                        // padding wider than the kernel half
    mk(1, 1, 7, 9, 1, 3, 3, 1, P1),                        // single channel in and out
    mk(1, 64, 8, 8, 64, 3, 3, 1, P1),                      // several channel vectors per tile
    mk(1, 7, 15, 15, 5, 7, 7, 1, P0),                      // 7x7 valid -> 9x9
    mk(2, 5, 7, 9, 7, 3, 3, 1, P1),                        // batch 2
    mk(2, 32, 15, 15, 17, 1, 1, 2, P0),                    // batch 2, 1x1 stride 2 (downsample)
    mk(1, 5, 7, 9, 16, 7, 7, 1, P0),                       // 1x3 output
    mk(1, 64, 5, 5, 3, 3, 3, 1, P1),                       // many inputs, few outputs
    mk(1, 7, 7, 9, 5, 3, 3, 1, P1, E::None, false),        // no bias
    mk(2, 17, 7, 9, 13, 5, 3, 2, {2, 1, 1, 0}, E::None, false),  // batch 2, all irregular
    // Fused epilogues.
    mk(1, 3, 15, 15, 17, 3, 3, 1, P1, E::Relu),
    mk(2, 16, 15, 15, 16, 3, 3, 2, P1, E::Relu),
    mk(1, 5, 7, 9, 7, 3, 3, 1, P1, E::BN, false),
    mk(1, 17, 7, 9, 17, 3, 3, 1, P1, E::BNRelu),
    mk(2, 3, 15, 15, 16, 7, 7, 2, P3, E::BNRelu, false),
    mk(1, 33, 7, 9, 13, 1, 1, 1, P0, E::BN),
    mk(1, 7, 7, 9, 7, 3, 3, 1, P1, E::ResInput),
    mk(1, 7, 7, 9, 7, 3, 3, 1, P1, E::ResInputRelu),
    mk(2, 16, 7, 9, 33, 1, 1, 1, P0, E::ResInputRelu),
    mk(1, 5, 15, 15, 16, 3, 3, 2, P1, E::ResConvRelu),
    mk(1, 13, 9, 11, 13, 3, 3, 1, {0, 1, 1, 0}, E::ResConvRelu, false),
    mk(1, 16, 7, 9, 16, 3, 3, 1, P1, E::ResIdentityRelu),
    mk(2, 5, 9, 11, 5, 3, 3, 1, P1, E::ResIdentityRelu, false),
    mk(1, 16, 8, 8, 16, 3, 3, 1, P1, E::BNResInputRelu, false),
    mk(2, 17, 7, 9, 17, 3, 3, 1, P1, E::BNResInputRelu, false, 1),
    // Short reductions (<= 64 per output) with many outputs: on AVX-512, tiles of up to 9
    // vectors that divide the channels (8 lanes x 9, 16 x 3, 8 x 5, 16 x 4), columns shifted
    // (kernels/conv2d.cpp: channel_dividing_tile).
    mk(1, 24, 9, 13, 72, 1, 1, 1, P0, E::Relu),
    mk(2, 16, 7, 11, 48, 1, 1, 1, P0, E::ResInputRelu),
    mk(1, 40, 9, 11, 120, 1, 1, 2, P0),
    mk(1, 7, 9, 9, 64, 3, 3, 1, P1, E::BNRelu),
    // Longer reductions where the general tile would be one vector or leave a block shifted
    // inward: tiles of 5 and 7 vectors.
    mk(1, 17, 9, 9, 80, 3, 3, 1, P1, E::ResInputRelu),
    mk(2, 96, 7, 14, 112, 1, 1, 1, P0),
    // A long reduction over channels 16 does not divide: two 16-lane vectors, the last block
    // shifted inward.
    mk(1, 136, 5, 7, 136, 1, 1, 1, P0, E::Relu),
};

class Conv2dTest : public ::testing::TestWithParam<ConvCase> {};

uint64_t seed_of(const std::string &s) {
  uint64_t h = 1469598103934665603ull;
  for (char ch : s) h = (h ^ (unsigned char)ch) * 1099511628211ull;
  return h;
}

TEST_P(Conv2dTest, MatchesReference) {
  const ConvCase &c = GetParam();
  ref::Rng rng(seed_of(c.name()));
  const Shape xs{c.N, c.C, c.H, c.W}, ws{c.M, c.C, c.KH, c.KW};
  const float wscale = 1.f / std::sqrt((float)(c.C * c.KH * c.KW));
  Tensor x = ref::random_tensor(xs, rng);
  std::vector<float> w = ref::randn(ref::numel(ws), rng, wscale), bias = ref::randn(c.M, rng, 0.5f);

  ref::GraphBuilder b;
  int xv = b.input("x", xs);
  int y = b.conv(xv, b.constant("w", ws, w), c.bias ? b.constant("b", {c.M}, bias) : -1, c.stride, c.pads, c.dil);
  Tensor want = ref::conv2d(x, w, ws, c.bias ? &bias : nullptr, c.stride, c.pads, c.dil);
  std::vector<Tensor> inputs{x};

  const bool bn = c.epi == E::BN || c.epi == E::BNRelu || c.epi == E::BNResInputRelu;
  const bool res_input = c.epi == E::ResInput || c.epi == E::ResInputRelu || c.epi == E::BNResInputRelu;
  const bool res_conv = c.epi == E::ResConvRelu;
  const bool res_identity = c.epi == E::ResIdentityRelu;
  const bool relu = c.epi == E::Relu || c.epi == E::BNRelu || c.epi == E::ResInputRelu || c.epi == E::ResConvRelu ||
                    c.epi == E::ResIdentityRelu || c.epi == E::BNResInputRelu;
  if (bn) {
    std::vector<float> gamma(c.M), beta(c.M), mean(c.M), var(c.M);
    for (int64_t m = 0; m < c.M; m++) {
      gamma[m] = rng.uniform(0.5f, 1.5f);
      beta[m] = rng.normal() * 0.3f;
      mean[m] = rng.normal() * 0.3f;
      var[m] = rng.uniform(0.3f, 2.f);
    }
    y = b.batchnorm(y, gamma, beta, mean, var, 1e-5f);
    want = ref::batchnorm(want, gamma, beta, mean, var, 1e-5f);
  }
  if (res_input) {
    Tensor r = ref::random_tensor(want.shape, rng);
    y = b.node("Add", {y, b.input("residual", r.shape)});
    want = ref::add(want, r);
    inputs.push_back(r);
  }
  if (res_conv) {
    // A second convolution of the same input with the same geometry, so shapes agree.
    std::vector<float> w2 = ref::randn(ref::numel(ws), rng, wscale), b2 = ref::randn(c.M, rng, 0.5f);
    int y2 = b.conv(xv, b.constant("w2", ws, w2), b.constant("b2", {c.M}, b2), c.stride, c.pads, c.dil);
    y = b.node("Add", {y, y2});
    want = ref::add(want, ref::conv2d(x, w2, ws, &b2, c.stride, c.pads, c.dil));
  }
  if (res_identity) {
    ASSERT_EQ(want.shape, x.shape) << "identity shortcut needs a same-shaped output";
    y = b.node("Add", {y, xv});
    want = ref::add(want, x);
  }
  if (relu) {
    y = b.node("Relu", {y});
    want = ref::relu(want);
  }
  b.output(y);
  qnnc::Module m = ref::compile(b.finish());

  // Everything is fused into the convolution(s): only layout transforms besides.
  auto ops = ref::step_ops(m);
  EXPECT_EQ(ref::count(ops, "conv2d"), res_conv ? 2 : 1);
  EXPECT_EQ(ref::count(ops, "conv2d") + ref::count(ops, "layout"), (int)ops.size());
  bool has_residual = false, has_relu = false;
  for (const auto &st : m.manifest()["steps"])
    if (st["op"] == "conv2d") {
      auto spec = qnnc::KernelSpec::from_json(st["spec"]);
      has_residual = has_residual || spec.residual;
      has_relu = has_relu || spec.relu;
    }
  EXPECT_EQ(has_residual, res_input || res_conv || res_identity);
  EXPECT_EQ(has_relu, relu);

  auto out = m.run(inputs);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(ref::Close(out[0], want, 1e-4)) << c.name();
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<ConvCase> &i) { return i.param.name(); });

// A stem (an image of at most 4 channels) reads the model's NCHW input itself: the layout step
// before it folds in (passes: fold_input_layout). Against the reference, with the input read in
// place (borders tested in the loads) and through a padded copy (its columns in vectors from 16
// wide on), for 1, 3 and 4 channels, 3x3/2, 7x7/2, 1x1 and an asymmetric 5x5, batch 2.
TEST(Conv2dStem, ReadsNchwInputDirectly) {
  struct S {
    Shape x;
    int64_t M, K, stride;
    std::array<int64_t, 4> pads;
  };
  const S cases[] = {{{2, 3, 9, 37}, 32, 3, 2, {1, 1, 1, 1}},  {{1, 3, 20, 33}, 24, 7, 2, {3, 3, 3, 3}},
                     {{1, 1, 17, 17}, 16, 3, 1, {1, 1, 1, 1}}, {{1, 4, 16, 19}, 8, 1, 1, {0, 0, 0, 0}},
                     {{2, 3, 18, 21}, 17, 5, 1, {2, 1, 0, 2}}};
  for (const S &c : cases) {
    SCOPED_TRACE("C " + std::to_string(c.x[1]) + " " + std::to_string(c.x[3]) + " wide, " + std::to_string(c.K) +
                 "x" + std::to_string(c.K) + "/" + std::to_string(c.stride));
    ref::Rng rng(500 + c.x[1] * 7 + c.K);
    Shape ws{c.M, c.x[1], c.K, c.K};
    std::vector<float> w = ref::randn(ref::numel(ws), rng, 0.3f), b = ref::randn(c.M, rng, 0.2f);
    Tensor x = ref::random_tensor(c.x, rng);
    ref::GraphBuilder gb;
    int xi = gb.input("x", c.x);
    int y = gb.node("Conv", {xi, gb.constant("w", ws, w), gb.constant("b", {c.M}, b)}, [&](qnnc::Node &n) {
      n.set_ints("strides", {c.stride, c.stride});
      n.set_ints("pads", {c.pads[0], c.pads[1], c.pads[2], c.pads[3]});
      n.set_ints("kernel_shape", {c.K, c.K});
    });
    gb.output(gb.node("Relu", {y}));
    Tensor want = ref::relu(ref::conv2d(x, w, ws, &b, {c.stride, c.stride}, c.pads, {1, 1}));
    for (int inline_pad : {0, 1}) {
      qnnc::CompileOptions opt;
      opt.knobs["conv2d"]["pad_inline"] = inline_pad;
      qnnc::Module m = qnnc::compile(gb.g, opt);
      auto ops = ref::step_ops(m);
      ASSERT_FALSE(ops.empty());
      EXPECT_EQ(ops[0], "conv2d") << "the input's transpose folds into the convolution";
      EXPECT_EQ(ref::count(ops, "layout"), 1) << "only the output's transpose remains";
      EXPECT_TRUE(ref::Close(m.run({x})[0], want, 1e-4)) << "pad_inline " << inline_pad;
    }
  }
}

// Names are unique (gtest would reject duplicates, but make the cause obvious).
TEST(Conv2dCases, NamesAreUnique) {
  std::set<std::string> names;
  for (const auto &c : kCases) EXPECT_TRUE(names.insert(c.name()).second) << c.name();
}

}  // namespace

namespace {

// One convolution of case c (its bias, then a BNRelu, ResInputRelu or Relu epilogue) compiled
// with these conv2d knobs, with the reference output and the inputs; `seed` names the test.
struct KnobCase {
  qnnc::Module m;
  Tensor want;
  std::vector<Tensor> inputs;
};

KnobCase compile_with_knobs(const ConvCase &c, const qnnc::Knobs &k, const std::string &seed) {
  ref::Rng rng(seed_of(seed + c.name()));
  const Shape xs{c.N, c.C, c.H, c.W}, ws{c.M, c.C, c.KH, c.KW};
  Tensor x = ref::random_tensor(xs, rng);
  std::vector<float> w = ref::randn(ref::numel(ws), rng, 1.f / std::sqrt((float)(c.C * c.KH * c.KW)));
  std::vector<float> bias = ref::randn(c.M, rng, 0.5f);
  ref::GraphBuilder b;
  int y = b.conv(b.input("x", xs), b.constant("w", ws, w), c.bias ? b.constant("b", {c.M}, bias) : -1, c.stride,
                 c.pads, c.dil);
  Tensor want = ref::conv2d(x, w, ws, c.bias ? &bias : nullptr, c.stride, c.pads, c.dil);
  std::vector<Tensor> inputs{x};
  if (c.epi == E::BNRelu) {
    std::vector<float> gamma(c.M, 1.2f), beta(c.M, 0.1f), mean(c.M, -0.2f), var(c.M, 0.7f);
    y = b.batchnorm(y, gamma, beta, mean, var, 1e-5f);
    want = ref::batchnorm(want, gamma, beta, mean, var, 1e-5f);
  }
  if (c.epi == E::ResInputRelu) {
    Tensor r = ref::random_tensor(want.shape, rng);
    y = b.node("Add", {y, b.input("residual", r.shape)});
    want = ref::add(want, r);
    inputs.push_back(r);
  }
  if (c.epi != E::None) {
    y = b.node("Relu", {y});
    want = ref::relu(want);
  }
  b.output(y);
  qnnc::CompileOptions opt;
  opt.knobs["conv2d"] = k;
  return {qnnc::compile(b.finish(), opt), want, inputs};
}

// conv2d steps of m whose spec and knobs satisfy pred.
int count_conv_steps(const qnnc::Module &m, bool (*pred)(const qnnc::KernelSpec &, const qnnc::Knobs &)) {
  int count = 0;
  for (const auto &st : m.manifest()["steps"])
    if (st["op"] == "conv2d") {
      auto spec = qnnc::KernelSpec::from_json(st["spec"]);
      count += pred(spec, spec.knobs);
    }
  return count;
}

}  // namespace

// The chunked reduction (knob k_chunk: each task's rows sum one chunk of input channels at a
// time into a buffer; kernels/conv2d.cpp) against the reference: chunks of 16 and 32 channels,
// tiles whose width does not divide the row (whole tiles past the end, reads clamped into
// unpadded images), several rows per task (one that does not divide the height), tasks in runs,
// the padding in a copy or tested in the loads, stride 2, dilation, residual, batch 2.
TEST(Conv2dChunked, MatchesReference) {
  struct S {
    ConvCase c;
    qnnc::Knobs k;
  };
  const S cases[] = {
      {mk(1, 64, 12, 14, 64, 3, 3, 1, P1, E::Relu), {{"k_chunk", 16}, {"co_vectors", 4}, {"x_tile", 6}}},
      {mk(2, 32, 9, 11, 48, 3, 3, 2, P1, E::ResInputRelu), {{"k_chunk", 16}, {"x_tile", 4}, {"chunk_rows", 2}}},
      {mk(1, 96, 7, 7, 80, 1, 1, 1, P0, E::ResInputRelu), {{"k_chunk", 32}, {"x_tile", 7}, {"chunk_rows", 7}}},
      {mk(1, 64, 13, 13, 40, 1, 1, 2, P0), {{"k_chunk", 16}, {"x_tile", 5}, {"chunk_rows", 3}, {"tasks", 4}}},
      {mk(1, 48, 11, 10, 33, 3, 3, 1, P2, E::BNRelu, true, 2), {{"k_chunk", 16}, {"x_tile", 3}, {"pad_inline", 1}}},
      {mk(2, 32, 8, 9, 32, 5, 3, 1, {2, 1, 2, 1}), {{"k_chunk", 16}, {"co_vectors", 1}, {"x_tile", 8}, {"chunk_rows", 4}}},
  };
  for (const S &s : cases) {
    SCOPED_TRACE(s.c.name());
    KnobCase kc = compile_with_knobs(s.c, s.k, "chunked");
    EXPECT_EQ(count_conv_steps(kc.m, qnnc::conv2d_chunk_fits), 1) << "the convolution runs its reduction in chunks";
    EXPECT_TRUE(ref::Close(kc.m.run(kc.inputs)[0], kc.want, 1e-4));
  }
}

// Weights packed as one block of all output channels (knob flat_weights, the AVX-512 default
// for channels that 16 does not divide under a long reduction), forced so that every host runs
// it, against the reference: tiles of 3 and 2 vectors with the last block shifted inward (72
// at stride 2 with batch 2 and a residual, 168 in a 1x1, 40 in 2 vectors), with reduction
// chunks, and with Winograd asked for too (which keeps its own blocks).
TEST(Conv2dFlatWeights, MatchesReference) {
  struct S {
    ConvCase c;
    qnnc::Knobs k;
  };
  const S cases[] = {
      {mk(2, 24, 13, 13, 72, 3, 3, 2, P1, E::ResInputRelu), {{"co_vectors", 3}, {"x_tile", 7}}},
      {mk(1, 40, 14, 14, 168, 1, 1, 1, P0, E::Relu), {{"co_vectors", 3}, {"x_tile", 7}}},
      {mk(1, 17, 9, 9, 40, 3, 3, 1, P1), {{"co_vectors", 2}, {"x_tile", 8}}},
      {mk(1, 64, 7, 7, 72, 3, 3, 1, P1, E::Relu), {{"co_vectors", 3}, {"x_tile", 7}, {"k_chunk", 16}}},
      {mk(1, 32, 8, 8, 56, 3, 3, 1, P1), {{"co_vectors", 3}, {"winograd", 1}}},
  };
  for (const S &s : cases) {
    SCOPED_TRACE(s.c.name());
    qnnc::Knobs k = s.k;
    k["vec"] = 16;
    k["flat_weights"] = 1;
    KnobCase kc = compile_with_knobs(s.c, k, "flat_weights");
    auto flat = [](const qnnc::KernelSpec &, const qnnc::Knobs &k) { return qnnc::knob(k, "flat_weights", 0) == 1; };
    EXPECT_EQ(count_conv_steps(kc.m, flat), 1) << "the knob reaches the step";
    EXPECT_TRUE(ref::Close(kc.m.run(kc.inputs)[0], kc.want, 1e-4));
  }
  // AVX2's tile for channels that 2 vectors of 8 do not divide (avx2_shifted_pair_tile): 116 in a
  // 1x1 over its pixels as one row with a residual, 58 under a 3x3 window with batch 2, 33 at
  // stride 2.
  const S avx2[] = {
      {mk(1, 24, 14, 14, 116, 1, 1, 1, P0, E::ResInputRelu), {{"x_tile", 4}, {"pixel_row", 1}}},
      {mk(2, 58, 10, 10, 58, 3, 3, 1, P1, E::Relu), {{"x_tile", 4}}},
      {mk(1, 16, 11, 11, 33, 3, 3, 2, P1), {{"x_tile", 4}}},
  };
  for (const S &s : avx2) {
    SCOPED_TRACE(s.c.name());
    qnnc::Knobs k = s.k;
    k["vec"] = 8;
    k["co_vectors"] = 2;
    k["flat_weights"] = 1;
    KnobCase kc = compile_with_knobs(s.c, k, "flat_weights");
    EXPECT_TRUE(ref::Close(kc.m.run(kc.inputs)[0], kc.want, 1e-4));
  }
}

// 1x1 stride-1 layers over their pixels as one row (knob pixel_row: tiles run across the
// image's rows, tasks are runs of tiles x channel blocks; kernels/conv2d.h), forced so that every
// host runs it, against the reference: tiles that do not divide the pixels (the last shifted
// inward), rows of tiles longer than a task's run and shorter, channels that vectors do not
// divide, batch 2, residual, batch norm, tasks in runs. A 3x3 layer ignores the knob.
TEST(Conv2dPixelRow, MatchesReference) {
  struct S {
    ConvCase c;
    qnnc::Knobs k;
    int rows;  // steps expected to run as one row
  };
  const S cases[] = {
      {mk(2, 40, 7, 9, 24, 1, 1, 1, P0, E::ResInputRelu), {{"x_tile", 6}}, 1},
      {mk(1, 256, 14, 14, 48, 1, 1, 1, P0, E::Relu), {{"x_tile", 6}, {"co_vectors", 2}}, 1},
      {mk(1, 17, 5, 3, 20, 1, 1, 1, P0), {{"x_tile", 4}}, 1},
      {mk(1, 64, 28, 28, 33, 1, 1, 1, P0, E::BNRelu), {{"x_tile", 5}, {"tasks", 4}}, 1},
      {mk(2, 32, 13, 11, 64, 1, 1, 1, P0, E::None, false), {{"x_tile", 6}, {"co_vectors", 2}, {"unroll_ci", 4}}, 1},
      {mk(1, 24, 9, 9, 40, 3, 3, 1, P1, E::Relu), {{"x_tile", 6}}, 0},
  };
  for (const S &s : cases) {
    SCOPED_TRACE(s.c.name());
    qnnc::Knobs k = s.k;
    k["pixel_row"] = 1;
    KnobCase kc = compile_with_knobs(s.c, k, "pixel_row");
    EXPECT_EQ(count_conv_steps(kc.m, qnnc::conv2d_pixel_row), s.rows) << "the knob reaches the step where it applies";
    EXPECT_TRUE(ref::Close(kc.m.run(kc.inputs)[0], kc.want, 1e-4));
  }
}

namespace {

// A square fp32 convolution's spec for the default-knob tests.
qnnc::KernelSpec square_conv_spec(int64_t C, int64_t M, int64_t HW, int64_t k) {
  return spec_helpers::square_conv("conv2d", C, M, HW, k);
}
using spec_helpers::kArmDot;
using spec_helpers::kAvx2;
using spec_helpers::kAvx512;

}  // namespace

// Where pixel_row is the default: x86 without AVX-512, a 1x1 layer over 256 or more input
// channels whose output channels come in blocks of 16, as 2 vectors by 6 columns; or one whose
// tile's columns leave a shifted last tile in each row but divide the pixels.
TEST(Conv2dPixelRow, DefaultOnAvx2ForLongReductions) {
  qnnc::Knobs k = qnnc::default_knobs(square_conv_spec(1232, 1232, 14, 1), kAvx2);
  EXPECT_EQ(qnnc::knob(k, "pixel_row", 0), 1);
  EXPECT_EQ(qnnc::knob(k, "x_tile", 0), 6);
  EXPECT_EQ(qnnc::knob(k, "co_vectors", 0), 2);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(256, 64, 56, 1), kAvx2), "pixel_row", 0), 1);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(64, 256, 56, 1), kAvx2), "pixel_row", 0), 0)
      << "short reduction";
  k = qnnc::default_knobs(square_conv_spec(1024, 512, 14, 1), kAvx2);  // the general rule: 4 vectors x 2 columns
  EXPECT_EQ(qnnc::knob(k, "pixel_row", 0), 1);
  EXPECT_EQ(qnnc::knob(k, "co_vectors", 0), 2);
  k = qnnc::default_knobs(square_conv_spec(960, 320, 7, 1), kAvx2);  // the general rule: 1 vector x 7 columns
  EXPECT_EQ(qnnc::knob(k, "pixel_row", 0), 1);
  EXPECT_EQ(qnnc::knob(k, "x_tile", 0), 6);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(256, 1000, 7, 1), kAvx2), "pixel_row", 0), 0)
      << "blocks of 16 do not divide";
  // Shorter reductions: their general tile, as one row where its columns do not divide the
  // rows but divide the pixels.
  k = qnnc::default_knobs(square_conv_spec(64, 384, 14, 1), kAvx2);  // 3 vectors x 4 columns
  EXPECT_EQ(qnnc::knob(k, "pixel_row", 0), 1);
  EXPECT_EQ(qnnc::knob(k, "x_tile", 0), 4);
  EXPECT_EQ(qnnc::knob(k, "co_vectors", 0), 3);
  EXPECT_EQ(k.count("row_major"), 0u);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(192, 64, 14, 1), kAvx2), "pixel_row", 0), 0)
      << "4 vectors x 2 columns divide the rows";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(160, 960, 7, 1), kAvx2), "pixel_row", 0), 0)
      << "4 columns divide neither 7 nor 49";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(1232, 1232, 14, 3), kAvx2), "pixel_row", 0), 0) << "3x3";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(1232, 1232, 14, 1), kAvx512), "pixel_row", 0), 0);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(1232, 1232, 14, 1), kArmDot), "pixel_row", 0), 0);
}

// x86 without AVX-512: channels that 2 vectors of 8 do not divide take 2 vectors (the last
// block shifted inward, weights as one block) where the general rule left 1 vector by fewer than
// 7 columns; by target string.
TEST(Conv2dDefaults, Avx2TwoVectorsOverChannelsTheyDoNotDivide) {
  for (int64_t hw : {28, 14}) {
    qnnc::Knobs k = qnnc::default_knobs(square_conv_spec(116, 116, hw, 1), kAvx2);
    EXPECT_EQ(qnnc::knob(k, "co_vectors", 0), 2) << hw;
    EXPECT_EQ(qnnc::knob(k, "flat_weights", 0), 1) << hw;
    EXPECT_EQ(qnnc::knob(k, "row_major", 0), 0) << hw;
  }
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(58, 58, 28, 3), kAvx2), "co_vectors", 0), 2);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(72, 40, 28, 1), kAvx2), "co_vectors", 0), 2)
      << "48 computed for 40";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(232, 232, 7, 1), kAvx2), "co_vectors", 0), 1)
      << "1 vector x 7 columns stays";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(64, 64, 28, 1), kAvx2), "flat_weights", 0), 0)
      << "2 vectors divide 64";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(116, 116, 28, 1), kAvx512), "co_vectors", 0) == 2 &&
                qnnc::knob(qnnc::default_knobs(square_conv_spec(116, 116, 28, 1), kAvx512), "vec", 0) == 8,
            false)
      << "AVX-512 keeps its own rules";
}

// fp32 1x1 layers on x86 without AVX-512 take row-by-row tasks where their input passes 1 MB and
// their weights fit 256 kB (by target string, whatever CPU runs the test).
TEST(Conv2dDefaults, Avx2RowByRowOverLargeInputs) {
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(128, 256, 56, 1), kAvx2), "row_major", 0), 1);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(32, 16, 112, 1), kAvx2), "row_major", 0), 1);
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(64, 256, 56, 1), kAvx2), "row_major", 0), 0)
      << "0.8 MB of input";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(64, 64, 224, 3), kAvx2), "row_major", 0), 0) << "3x3";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(128, 1024, 56, 1), kAvx2), "row_major", 0), 0)
      << "512 kB of weights";
  EXPECT_EQ(qnnc::knob(qnnc::default_knobs(square_conv_spec(128, 256, 56, 1), kAvx512), "row_major", 0), 0);
}

// Winograd F(2x2, 3x3) (knob winograd: kernels/conv2d_winograd.h) against the reference: odd
// widths and heights (a last tile half outside the output), channels below, at and around the
// vector width, valid and asymmetric padding, register tiles and task rows that do not divide
// the tile grid, one channel block or several (the last shifted inward), batch 2, images of one
// pixel, the input transformed per task or in a pass of its own, and the fused epilogues
// (residual, ReLU, batch norm).
TEST(Conv2dWinograd, MatchesReference) {
  struct S {
    ConvCase c;
    qnnc::Knobs k;
  };
  const S cases[] = {
      {mk(1, 64, 14, 14, 64, 3, 3, 1, P1, E::Relu), {}},
      {mk(1, 17, 9, 11, 33, 3, 3, 1, P1), {{"wino_tiles", 4}}},
      {mk(2, 16, 7, 7, 48, 3, 3, 1, P1, E::ResInputRelu), {{"wino_tiles", 3}, {"wino_rows", 2}}},
      {mk(1, 5, 8, 13, 7, 3, 3, 1, P0), {{"wino_tiles", 2}}},
      {mk(1, 6, 7, 9, 17, 3, 3, 1, {0, 1, 1, 0}), {}},
      {mk(1, 32, 1, 1, 16, 3, 3, 1, P1), {}},
      {mk(1, 24, 5, 6, 40, 3, 3, 1, P2, E::BNRelu), {{"wino_tiles", 8}, {"wino_rows", 4}}},
      {mk(2, 33, 12, 10, 80, 3, 3, 1, P1, E::ResInputRelu, false), {{"co_vectors", 2}, {"wino_tiles", 5}}},
      // The input transformed in a pass of its own; tasks are rows x channel blocks.
      {mk(1, 48, 11, 9, 64, 3, 3, 1, P1, E::Relu), {{"wino_root", 1}, {"wino_rows", 2}, {"wino_tiles", 4}}},
      {mk(2, 20, 6, 7, 24, 3, 3, 1, P1, E::ResInputRelu), {{"wino_root", 1}, {"wino_rows", 4}}},
  };
  for (const S &s : cases) {
    SCOPED_TRACE(s.c.name());
    qnnc::Knobs k = s.k;
    k["winograd"] = 1;
    KnobCase kc = compile_with_knobs(s.c, k, "winograd");
    EXPECT_EQ(count_conv_steps(kc.m, qnnc::conv2d_uses_winograd), 1) << "the convolution runs Winograd";
    EXPECT_TRUE(ref::Close(kc.m.run(kc.inputs)[0], kc.want, 1e-4));
  }
}
