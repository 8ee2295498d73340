// Test support for the integer (quantized) kernels: naive integer references written from the
// definitions (plain loops over NCHW, 128-bit arithmetic where products can overflow), a seeded
// RNG, and helpers that build small integer graphs, compile them and run them. Independent of
// the product's kernels and of reference.h (the fp32 tests' support).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "codegen/compile.h"
#include "ir/graph.h"
#include "ir/shape_infer.h"
#include "runtime/module.h"
#include "runtime/tensor.h"

namespace qref {

using qnnc::Tensor;
using Shape = std::vector<int64_t>;

// SplitMix64: the same sequence on every platform and standard library.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed * 0xD1B54A32D192ED03ull + 0x8BB84B93962EACC9ull) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int64_t integer(int64_t lo, int64_t hi) { return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1)); }  // [lo, hi]
  double uniform() { return ((next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }                     // (0, 1)
  double normal() { return std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
};

inline int64_t numel(const Shape &s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Integer arithmetic from its definition.

// round(a * b / 2^q) with ties rounded up (towards +infinity), computed exactly in 128 bits and
// saturated to int32: (a*b + 2^(q-1)) >> q with an arithmetic (flooring) shift.
inline int32_t rmsr(int64_t a, int64_t b, int q) {
  __int128 p = (__int128)a * (__int128)b;
  if (q > 0) p += (__int128)1 << (q - 1);
  // Floor division by 2^q (>> on a negative __int128 is arithmetic with GCC/Clang, but spell
  // the floor out so the reference does not lean on it).
  __int128 d = (__int128)1 << q;
  __int128 r = p / d;
  if (p % d != 0 && p < 0) r -= 1;
  if (r > std::numeric_limits<int32_t>::max()) return std::numeric_limits<int32_t>::max();
  if (r < std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::min();
  return (int32_t)r;
}

// round(a * b / 2^q) with ties to the even neighbour, exactly in 128 bits, saturated to int32.
inline int32_t rmsr_even(int64_t a, int64_t b, int q) {
  __int128 p = (__int128)a * (__int128)b, d = (__int128)1 << q;
  __int128 fl = p / d;
  if (p % d != 0 && p < 0) fl -= 1;  // floor
  __int128 rem = p - fl * d;          // in [0, d)
  if (2 * rem > d || (2 * rem == d && (fl % 2 != 0))) fl += 1;
  if (fl > std::numeric_limits<int32_t>::max()) return std::numeric_limits<int32_t>::max();
  if (fl < std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::min();
  return (int32_t)fl;
}

// An integer NCHW tensor.
struct ITensor {
  Shape shape;
  std::vector<int32_t> data;
  int32_t &at(int64_t n, int64_t c, int64_t h, int64_t w) {
    return data[(size_t)(((n * shape[1] + c) * shape[2] + h) * shape[3] + w)];
  }
  int32_t at(int64_t n, int64_t c, int64_t h, int64_t w) const {
    return data[(size_t)(((n * shape[1] + c) * shape[2] + h) * shape[3] + w)];
  }
};

inline int64_t out_size(int64_t in, int64_t k, int64_t stride, int64_t pb, int64_t pe, int64_t dil) {
  return (in + pb + pe - dil * (k - 1) - 1) / stride + 1;
}

struct ConvQParams {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 4> pads{0, 0, 0, 0};  // top, left, bottom, right
  std::array<int64_t, 2> dil{1, 1};
  bool relu = false;
  int in_zp = 0, out_zp = 0, res_zp = 0, res_mult = 0, res_shift = 0, qmax = 255;
  bool ties_to_even = false;  // rounding "tonearest" instead of "upward"
};

// The raw accumulator: bias[m] + sum over taps and channels of x_pad * w, where x_pad is the
// input zero point outside the image. int64 so that the test can see an int32 overflow.
inline std::vector<int64_t> conv_acc(const ITensor &x, const std::vector<int32_t> &w, const Shape &wshape,
                                     const std::vector<int32_t> &bias, const ConvQParams &p, Shape *out_shape) {
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t M = wshape[0], KH = wshape[2], KW = wshape[3];
  const int64_t OH = out_size(H, KH, p.stride[0], p.pads[0], p.pads[2], p.dil[0]);
  const int64_t OW = out_size(W, KW, p.stride[1], p.pads[1], p.pads[3], p.dil[1]);
  *out_shape = {N, M, OH, OW};
  std::vector<int64_t> acc((size_t)(N * M * OH * OW));
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t oy = 0; oy < OH; oy++)
        for (int64_t ox = 0; ox < OW; ox++) {
          int64_t a = bias[(size_t)m];
          for (int64_t c = 0; c < C; c++)
            for (int64_t ky = 0; ky < KH; ky++)
              for (int64_t kx = 0; kx < KW; kx++) {
                int64_t iy = oy * p.stride[0] - p.pads[0] + ky * p.dil[0];
                int64_t ix = ox * p.stride[1] - p.pads[1] + kx * p.dil[1];
                int64_t xv = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? x.at(n, c, iy, ix) : p.in_zp;
                a += xv * w[(size_t)(((m * C + c) * KH + ky) * KW + kx)];
              }
          acc[(size_t)(((n * M + m) * OH + oy) * OW + ox)] = a;
        }
  return acc;
}

// The requantization of an accumulator, from its definition: in single precision, f =
// float(acc) * (float(mult) * 2^-shift), plus a residual's float(r - res_zp) *
// (float(res_mult) * 2^-res_shift) (each product and the sum rounded on its own), clamped to
// [-2^22, 2^22], rounded to an integer (ties to even, or up). y = clamp(v + out_zp, relu ?
// out_zp : 0, qmax).
inline int64_t requantize_value(int64_t acc, int32_t mult, int32_t shift, bool ties_to_even, float residual_term = 0.f) {
  const float scale = (float)mult * std::ldexp(1.0f, -shift);
  volatile float product = (float)acc * scale;
  float f = product + residual_term;
  f = std::min(std::max(f, -4194304.0f), 4194304.0f);
  const float fl = std::floor(f), d = f - fl;
  if (d > 0.5f) return (int64_t)fl + 1;
  if (d < 0.5f) return (int64_t)fl;
  return ties_to_even ? (int64_t)fl + ((int64_t)fl & 1) : (int64_t)fl + 1;
}

inline ITensor requantize(const std::vector<int64_t> &acc, const Shape &shape, const std::vector<int32_t> &mult,
                          const std::vector<int32_t> &shift, const ITensor *residual, const ConvQParams &p) {
  const int64_t M = shape[1], HW = shape[2] * shape[3];
  ITensor y{shape, std::vector<int32_t>(acc.size())};
  const int64_t lo = p.relu ? p.out_zp : 0;
  for (size_t i = 0; i < acc.size(); i++) {
    int64_t m = ((int64_t)i / HW) % M;
    float term = 0.f;
    if (residual) {
      volatile float res_scale = (float)p.res_mult * std::ldexp(1.0f, -p.res_shift);
      term = (float)((int64_t)residual->data[i] - p.res_zp) * res_scale;
    }
    int64_t v = requantize_value(acc[i], mult[(size_t)m], shift[(size_t)m], p.ties_to_even, term);
    y.data[i] = (int32_t)std::clamp<int64_t>(v + p.out_zp, lo, p.qmax);
  }
  return y;
}

// Round half to even, as IEEE roundeven / nearbyint in the default rounding mode.
inline double round_half_even(double v) {
  double f = std::floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0 ? f : f + 1;
}

// ---------------------------------------------------------------------------------------------
// Graph building.

inline qnnc::TensorType ttype(qnnc::DType dt, Shape shape) {
  qnnc::TensorType t;
  t.dtype = dt;
  t.shape = std::move(shape);
  t.layout = t.shape.size() == 4 ? qnnc::Layout::NCHW : qnnc::Layout::Plain;
  return t;
}

// Marks v as a u8 activation with the given affine parameters (as quantize_graph does).
inline void mark_u8(qnnc::Graph &g, int v, float scale, int zp) {
  g.values[v].type.dtype = qnnc::DType::u8;
  g.values[v].scale = scale;
  g.values[v].zero_point = zp;
}

inline int add_input(qnnc::Graph &g, const std::string &name, const Shape &shape) {
  int v = g.add_value(name, ttype(qnnc::DType::f32, shape));
  g.inputs.push_back(v);
  return v;
}

inline int add_quantize(qnnc::Graph &g, int x, float scale, int zp, int qmax, const std::string &rounding = "upward") {
  int y = g.add_value(g.values[x].name + ".q", ttype(qnnc::DType::u8, g.values[x].type.shape));
  mark_u8(g, y, scale, zp);
  qnnc::Node n;
  n.name = g.values[x].name + "_quantize";
  n.op = "quantize";
  n.inputs = {x};
  n.outputs = {y};
  n.set_f("scale", scale);
  n.set_i("zero_point", zp);
  n.set_i("qmax", qmax);
  n.attrs["rounding"].s = rounding;
  g.add_node(n);
  return y;
}

inline int add_dequantize(qnnc::Graph &g, int x, float scale, int zp) {
  int y = g.add_value(g.values[x].name + ".dq", ttype(qnnc::DType::f32, g.values[x].type.shape));
  qnnc::Node n;
  n.name = g.values[x].name + "_dequantize";
  n.op = "dequantize";
  n.inputs = {x};
  n.outputs = {y};
  n.set_f("scale", scale);
  n.set_i("zero_point", zp);
  g.add_node(n);
  return y;
}

// Finishes a hand-built graph: outputs, shapes, verification.
inline void finish(qnnc::Graph &g, std::vector<int> outputs) {
  g.outputs = std::move(outputs);
  qnnc::infer_shapes(g);
  g.verify();
}

// knobs: per-family schedule overrides, e.g. {{"conv2d_q", {{"bitserial", 1}}}}.
inline qnnc::Module compile(const qnnc::Graph &g, std::map<std::string, qnnc::Knobs> knobs = {},
                            const std::string &target = "host") {
  qnnc::CompileOptions opt;  // no quantize: the graph is already integer
  opt.knobs = std::move(knobs);
  opt.target = target;
  return qnnc::compile(g, opt);
}

inline Tensor to_float(const ITensor &t) {
  Tensor f{t.shape, std::vector<float>(t.data.size())};
  for (size_t i = 0; i < t.data.size(); i++) f.data[i] = (float)t.data[i];
  return f;
}

inline ITensor random_levels(const Shape &s, Rng &rng, int lo, int hi) {
  ITensor t{s, std::vector<int32_t>((size_t)numel(s))};
  for (auto &v : t.data) v = (int32_t)rng.integer(lo, hi);
  return t;
}

// EXPECTs y == ref elementwise (ref as integers), reporting the first few mismatches.
inline void expect_exact(const Tensor &y, const ITensor &ref, const std::string &what) {
  ASSERT_EQ(y.shape, ref.shape) << what;
  ASSERT_EQ(y.data.size(), ref.data.size()) << what;
  int64_t bad = 0;
  const int64_t C = ref.shape.size() == 4 ? ref.shape[1] : 1, H = ref.shape.size() == 4 ? ref.shape[2] : 1,
                W = ref.shape.size() == 4 ? ref.shape[3] : 1;
  for (size_t i = 0; i < ref.data.size(); i++) {
    if (y.data[i] == (float)ref.data[i]) continue;
    if (bad++ < 8) {
      int64_t k = (int64_t)i;
      ADD_FAILURE() << what << ": element " << i << " (n" << k / (C * H * W) << " c" << (k / (H * W)) % C << " y"
                    << (k / W) % H << " x" << k % W << ") = " << y.data[i] << ", expected " << ref.data[i];
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << ref.data.size() << " elements differ";
}

}  // namespace qref
