// Windowed average pooling, channel concatenation and zero Pad folding against naive
// references: odd channels, stride 2, padding with count_include_pad both ways, ceil_mode,
// non-square windows, batch 2; concatenations of 2-4 inputs with channel counts that do not
// fill a vector, of 2-D tensors, and of a tensor with itself.
#include <gtest/gtest.h>

#include "reference.h"

namespace {

using qnnc::Tensor;
using ref::Shape;

struct PCase {
  Shape x;
  int64_t kh, kw, stride, pt, pl, pb, pr;
  bool ceil, include_pad;
};

Tensor avgpool_ref(const Tensor &x, const PCase &c, int64_t OH, int64_t OW) {
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  Tensor y{{N, C, OH, OW}, std::vector<float>((size_t)(N * C * OH * OW))};
  for (int64_t n = 0; n < N; n++)
    for (int64_t ch = 0; ch < C; ch++)
      for (int64_t oy = 0; oy < OH; oy++)
        for (int64_t ox = 0; ox < OW; ox++) {
          double s = 0;
          int64_t inside = 0, padded = 0;
          for (int64_t ky = 0; ky < c.kh; ky++)
            for (int64_t kx = 0; kx < c.kw; kx++) {
              int64_t iy = oy * c.stride + ky - c.pt, ix = ox * c.stride + kx - c.pl;
              if (iy >= -c.pt && iy < H + c.pb && ix >= -c.pl && ix < W + c.pr) padded++;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              inside++;
              s += ref::at4(x, n, ch, iy, ix);
            }
          y.data[((n * C + ch) * OH + oy) * OW + ox] = (float)(s / (c.include_pad ? padded : inside));
        }
  return y;
}

TEST(AvgPool, MatchesReference) {
  const PCase cases[] = {
      {{1, 5, 8, 8}, 2, 2, 2, 0, 0, 0, 0, false, false},      // DenseNet's transition
      {{2, 13, 9, 7}, 3, 3, 1, 1, 1, 1, 1, false, false},     // Inception's branch pool
      {{1, 13, 9, 7}, 3, 3, 1, 1, 1, 1, 1, false, true},
      {{1, 9, 10, 11}, 3, 3, 2, 1, 1, 1, 1, true, false},     // ceil_mode
      {{1, 9, 10, 11}, 3, 3, 2, 1, 1, 1, 1, true, true},
      {{1, 17, 7, 12}, 2, 3, 2, 0, 1, 1, 0, true, true},      // non-square, asymmetric pads
  };
  ref::Rng rng(11);
  for (const auto &c : cases) {
    Tensor x = ref::random_tensor(c.x, rng);
    ref::GraphBuilder gb;
    int xi = gb.input("x", c.x);
    gb.output(gb.node("AveragePool", {xi}, [&](qnnc::Node &n) {
      n.set_ints("kernel_shape", {c.kh, c.kw});
      n.set_ints("strides", {c.stride, c.stride});
      n.set_ints("pads", {c.pt, c.pl, c.pb, c.pr});
      n.set_i("ceil_mode", c.ceil);
      n.set_i("count_include_pad", c.include_pad);
    }));
    qnnc::Graph g = gb.finish();
    const auto &os = g.values[g.outputs[0]].type.shape;
    Tensor want = avgpool_ref(x, c, os[2], os[3]);
    qnnc::Module m = ref::compile(g);
    EXPECT_TRUE(ref::Close(m.run({x})[0], want, 1e-6)) << ref::shape_str(c.x) << " k" << c.kh << "x" << c.kw << " s"
                                                      << c.stride << " ceil " << c.ceil << " incl " << c.include_pad;
  }
}

// Pad(0) then AveragePool without pads folds into one step that counts the padded taps.
TEST(AvgPool, ZeroPadFoldsIntoThePool) {
  ref::GraphBuilder gb;
  Shape s{1, 6, 7, 7};
  int xi = gb.input("x", s);
  int p = gb.node("Pad", {xi}, [](qnnc::Node &n) { n.set_ints("pads", {0, 0, 1, 1, 0, 0, 1, 1}); });
  gb.output(gb.node("AveragePool", {p}, [](qnnc::Node &n) {
    n.set_ints("kernel_shape", {3, 3});
    n.set_ints("strides", {2, 2});
    n.set_ints("pads", {0, 0, 0, 0});
  }));
  qnnc::Module m = ref::compile(gb.finish());
  EXPECT_EQ(ref::count(ref::step_ops(m), "avgpool"), 1);
  Tensor x = qnnc::random_tensor(s, 2);
  PCase c{s, 3, 3, 2, 1, 1, 1, 1, false, true};
  EXPECT_TRUE(ref::Close(m.run({x})[0], avgpool_ref(x, c, 4, 4), 1e-6));
}

Tensor concat_ref(const std::vector<Tensor> &xs) {
  Shape s = xs[0].shape;
  int64_t C = 0;
  for (const auto &x : xs) C += x.shape[1];
  s[1] = C;
  int64_t inner = 1;
  for (size_t d = 2; d < s.size(); d++) inner *= s[d];
  Tensor y{s, std::vector<float>((size_t)ref::numel(s))};
  for (int64_t n = 0; n < s[0]; n++) {
    int64_t off = 0;
    for (const auto &x : xs) {
      for (int64_t c = 0; c < x.shape[1]; c++)
        for (int64_t i = 0; i < inner; i++)
          y.data[(n * C + off + c) * inner + i] = x.data[(n * x.shape[1] + c) * inner + i];
      off += x.shape[1];
    }
  }
  return y;
}

TEST(Concat, ChannelsOfActivations) {
  const std::vector<std::vector<int64_t>> splits = {{3, 5}, {8, 8, 8}, {1, 17, 2, 9}, {32, 13}};
  ref::Rng rng(4);
  for (const auto &parts : splits)
    for (Shape base : {Shape{2, 0, 5, 3}, Shape{3, 0}}) {
      ref::GraphBuilder gb;
      std::vector<int> ins;
      std::vector<Tensor> xs;
      for (size_t i = 0; i < parts.size(); i++) {
        Shape s = base;
        s[1] = parts[i];
        xs.push_back(ref::random_tensor(s, rng));
        // Through a ReLU so that concat reads kernel outputs, as in a network.
        ins.push_back(gb.node("Relu", {gb.input("x" + std::to_string(i), s)}));
        for (auto &v : xs.back().data) v = std::max(v, 0.f);
      }
      gb.output(gb.node("Concat", ins, [](qnnc::Node &n) { n.set_i("axis", 1); }));
      qnnc::Module m = ref::compile(gb.finish());
      std::vector<Tensor> feed;
      for (auto &x : xs) {
        Tensor raw = x;
        feed.push_back(raw);
      }
      EXPECT_TRUE(ref::Close(m.run(feed)[0], concat_ref(xs), 0.0)) << parts.size() << " parts, rank " << base.size();
    }
}

TEST(Concat, SameTensorTwice) {
  ref::GraphBuilder gb;
  int x = gb.node("Relu", {gb.input("x", {1, 6, 4, 4})});
  gb.output(gb.node("Concat", {x, x}, [](qnnc::Node &n) { n.set_i("axis", 1); }));
  qnnc::Module m = ref::compile(gb.finish());
  Tensor in = qnnc::random_tensor({1, 6, 4, 4}, 1);
  for (auto &v : in.data) v = std::max(v, 0.f);
  EXPECT_TRUE(ref::Close(m.run({in})[0], concat_ref({in, in}), 0.0));
}

}  // namespace
