// Bit planes between bit-serial layers: chains of 1-2 bit convolutions whose producers write
// bit planes straight from their epilogue (no bitpack step, no u8 in between), including a
// residual read as bit planes, with threshold epilogues, checked bit for bit against a naive
// integer reference of the whole chain, on the host and on x86-avx2, and again with u8 levels
// between the layers and with the multiplier epilogue.
#include <gtest/gtest.h>

#include <cmath>

#include "qreference.h"

namespace {

using qref::ConvQParams;
using qref::ITensor;
using qref::Rng;
using qref::Shape;
using qnnc::DType;

struct ChainCase {
  int64_t N, C, H, W, M;
  int64_t stride;
  int wbits, abits;
  std::string name() const {
    return "n" + std::to_string(N) + "_c" + std::to_string(C) + "_" + std::to_string(H) + "x" + std::to_string(W) + "_m" +
           std::to_string(M) + "_s" + std::to_string(stride) + "_w" + std::to_string(wbits) + "a" + std::to_string(abits);
  }
};
void PrintTo(const ChainCase &c, std::ostream *os) { *os << c.name(); }

// One quantized convolution of the chain: random weights of `wbits`, and a bias and multipliers
// that spread its outputs over the levels; `ref` is its output from the naive reference.
struct Layer {
  Shape ws;
  std::vector<int32_t> w, bias, mult, shift;
  ConvQParams p;
  ITensor ref;
};

Layer make_layer(Rng &rng, const ITensor &x, int64_t M, int64_t K, int64_t stride, int wbits, int qmax,
                 const ITensor *residual) {
  Layer L;
  L.ws = {M, x.shape[1], K, K};
  L.p.stride = {stride, stride};
  L.p.pads = {K / 2, K / 2, K / 2, K / 2};
  L.p.relu = true;
  L.p.qmax = qmax;
  L.w.resize((size_t)qref::numel(L.ws));
  for (auto &v : L.w) v = wbits == 1 ? (rng.integer(0, 1) ? 1 : -1) : (int32_t)rng.integer(-1, 1);
  std::vector<int32_t> zero((size_t)M, 0);
  Shape ys;
  auto acc0 = qref::conv_acc(x, L.w, L.ws, zero, L.p, &ys);
  double sm = 0, ss = 0;
  for (auto a : acc0) sm += (double)a, ss += (double)a * a;
  const double mean = sm / acc0.size(), sd = std::sqrt(std::max(1.0, ss / acc0.size() - mean * mean));
  L.bias.resize((size_t)M);
  L.mult.resize((size_t)M);
  L.shift.resize((size_t)M);
  for (int64_t m = 0; m < M; m++) {
    const int e = (int)std::floor(std::log2((qmax / 2.0 + 0.5) / sd));
    L.mult[m] = (int32_t)rng.integer(1ll << 30, (1ll << 31) - 1);
    L.shift[m] = std::clamp<int>(30 - e + (int)rng.integer(-1, 1), 28, 45);
    const double real = L.mult[m] / std::ldexp(1.0, L.shift[m]);
    L.bias[m] = (int32_t)std::llround(-mean + (0.45 * qmax) / real + (double)rng.integer(-(int64_t)sd, (int64_t)sd) / 3);
  }
  if (residual) {
    L.p.res_zp = 0;
    L.p.res_mult = (int32_t)rng.integer(1ll << 21, (1ll << 22) - 1);
    L.p.res_shift = 22;
  }
  L.ref = qref::requantize(qref::conv_acc(x, L.w, L.ws, L.bias, L.p, &ys), ys, L.mult, L.shift, residual, L.p);
  return L;
}

int add_layer(qnnc::Graph &g, const std::string &name, int x, const Layer &L, int wbits, int abits, int res = -1) {
  const int64_t M = L.ws[0];
  qnnc::Node n;
  n.name = name;
  n.op = "conv2d_q";
  n.inputs = {x, g.add_iconst(name + ".weight.q", L.ws, DType::i8, L.w), g.add_iconst(name + ".bias.q", {M}, DType::i32, L.bias),
              g.add_iconst(name + ".mult", {M}, DType::i32, L.mult), g.add_iconst(name + ".shift", {M}, DType::i32, L.shift)};
  if (res >= 0) n.inputs.push_back(res);
  n.set_ints("strides", {L.p.stride[0], L.p.stride[1]});
  n.set_ints("pads", {L.p.pads[0], L.p.pads[1], L.p.pads[2], L.p.pads[3]});
  n.set_ints("dilations", {1, 1});
  n.set_i("relu", 1);
  n.set_i("in_zp", 0);
  n.set_i("out_zp", 0);
  n.set_i("qmax", L.p.qmax);
  n.set_i("weight_bits", wbits);
  n.set_i("activation_bits", abits);
  if (res >= 0) {
    n.set_i("res_zp", L.p.res_zp);
    n.set_i("res_mult", L.p.res_mult);
    n.set_i("res_shift", L.p.res_shift);
  }
  int y = g.add_value(name + ".y", qref::ttype(DType::u8, {}));
  n.outputs = {y};
  g.add_node(n);
  qref::mark_u8(g, y, 1.f, 0);
  return y;
}

class BitPlanesChain : public ::testing::TestWithParam<ChainCase> {};

// x -> A (3x3, stride s) -> B (3x3) -> C (1x1, + residual A) -> D (1x1, 40 channels) -> out.
// A is read by B as input and by C as residual, B by C, C by D: all bit planes when the
// channels are whole words (M % 32 == 0); D's output is u8 (the model's output).
TEST_P(BitPlanesChain, MatchesIntegerReference) {
  const ChainCase c = GetParam();
  uint64_t seed = 1469598103934665603ull;
  for (unsigned char ch : c.name()) seed = (seed ^ ch) * 1099511628211ull;
  Rng rng(seed);
  const int qmax = (1 << c.abits) - 1;
  ITensor x = qref::random_levels({c.N, c.C, c.H, c.W}, rng, 0, qmax);
  Layer A = make_layer(rng, x, c.M, 3, c.stride, c.wbits, qmax, nullptr);
  Layer B = make_layer(rng, A.ref, c.M, 3, 1, c.wbits, qmax, nullptr);
  Layer C = make_layer(rng, B.ref, c.M, 1, 1, c.wbits, qmax, &A.ref);
  Layer D = make_layer(rng, C.ref, 40, 1, 1, c.wbits, qmax, nullptr);
  for (const Layer *L : {&A, &B, &C, &D}) {
    std::map<int32_t, int64_t> hist;
    for (auto v : L->ref.data) hist[v]++;
    ASSERT_EQ((int)hist.size(), qmax + 1) << "test setup: a layer's outputs miss a level";
    for (auto &[lvl, cnt] : hist) ASSERT_LT(cnt, (int64_t)L->ref.data.size() * 9 / 10) << "test setup: level " << lvl;
  }

  qnnc::Graph g;
  g.name = "bitplanes_" + c.name();
  int xq = qref::add_quantize(g, qref::add_input(g, "x", x.shape), 1.f, 0, qmax);
  int a = add_layer(g, "A", xq, A, c.wbits, c.abits);
  int b = add_layer(g, "B", a, B, c.wbits, c.abits);
  int cc = add_layer(g, "C", b, C, c.wbits, c.abits, a);
  int d = add_layer(g, "D", cc, D, c.wbits, c.abits);
  qref::finish(g, {qref::add_dequantize(g, d, 1.f, 0)});

  const std::map<std::string, qnnc::Knobs> bitserial{{"conv2d_q", {{"bitserial", 1}}}};
  qnnc::Module mod = qref::compile(g, bitserial);
  // Which values the bit-serial layers write as planes, and how many bitpack steps remain.
  int bitpacks = 0, plane_writers = 0, threshold_layers = 0;
  const auto &m = mod.manifest();
  for (const auto &st : m["steps"]) {
    if (st.value("op", "") == "bitpack") bitpacks++;
    if (st.contains("spec") && st["spec"].value("knobs", nlohmann::json::object()).value("thresholds", 0) > 0) threshold_layers++;
    for (int v : st["writes"])
      if (m["values"][v].value("layout", "") == "bitplanes" && st.value("op", "") == "conv2d_q") plane_writers++;
  }
  const bool words = c.M % 32 == 0;
  EXPECT_EQ(plane_writers, words ? 3 : 0) << "A, B and C write bit planes";
  EXPECT_EQ(bitpacks, words ? 1 : 4) << "with planes out, only the model input is packed by a bitpack step";
  EXPECT_EQ(threshold_layers, 4) << "every layer has at most 3 output levels: threshold epilogues";

  auto out = mod.run({qref::to_float(x)});
  ASSERT_EQ(out.size(), 1u);
  qref::expect_exact(out[0], D.ref, c.name());
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    auto out2 = qref::compile(g, bitserial, "x86-avx2").run({qref::to_float(x)});
    qref::expect_exact(out2[0], D.ref, c.name() + " on x86-avx2");
  }
  // The same chain with u8 levels and bitpack steps between the layers, and with the
  // multiplier epilogue instead of thresholds, gives the same integers.
  auto knobs = bitserial;
  knobs["conv2d_bs"]["output_bits"] = 0;
  auto out3 = qref::compile(g, knobs).run({qref::to_float(x)});
  qref::expect_exact(out3[0], D.ref, c.name() + " without bit-plane outputs");
  knobs = bitserial;
  knobs["conv2d_bs"]["thresholds"] = 0;
  auto out4 = qref::compile(g, knobs).run({qref::to_float(x)});
  qref::expect_exact(out4[0], D.ref, c.name() + " with the multiplier epilogue");
}

INSTANTIATE_TEST_SUITE_P(Chains, BitPlanesChain,
                         ::testing::Values(ChainCase{1, 19, 9, 9, 64, 1, 1, 1},    // C % 32 != 0
                                           ChainCase{2, 33, 10, 7, 32, 2, 1, 2},   // batch 2, stride 2
                                           ChainCase{1, 64, 8, 8, 96, 1, 2, 1},    // three words
                                           ChainCase{1, 40, 11, 11, 64, 2, 2, 2},  // W2A2, odd size
                                           ChainCase{1, 21, 8, 8, 48, 1, 1, 2},    // 48: no planes out
                                           ChainCase{1, 260, 5, 6, 64, 1, 1, 1}),  // 9 input words: vectorized sums
                         [](const ::testing::TestParamInfo<ChainCase> &i) { return i.param.name(); });

}  // namespace
